"""Fine-tuning: prompt sampling, a data collator, datasets, rendered shapes and one-click evaluation
(the loss itself is `edgetam_hf.losses`, beside the model that returns it); see docs/finetuning.md."""
