"""`edgetam-hf studio`: a local web app to segment images and track objects through videos by
clicking, correcting on any frame and downloading the masks (docs/studio.md).

A client of the package's public API: images through `EdgeTamModel.get_image_embeddings` and
`image_embeddings=`, videos through `EdgeTamVideoProcessor` sessions and `EdgeTamVideoModel`
(prompts, `propagate_in_video_iterator`, `remove_object`, `clear_prompts_in_frame`); it keeps
no tracking rule of its own. Needs the `studio` extra: `pip install -e ".[studio]"`.

    app.py          the routes (Starlette)
    models.py       which models serve the studio (--model, or the bundled tiny ones)
    backends.py     PyTorch and onnxruntime behind one small interface
    sessions.py     bounded, expiring sessions, each with its own temporary folder
    uploads.py      receiving files within limits, opening them with a clear message
    image_work.py   one image: encoded once, each object's candidates from its prompts
    serving.py      the studio served from a thread (tests, benchmark)
    video_work.py   one video: prompts on any frame, propagation as a cancellable job
    exports.py      PNG / DAVIS zip, COCO RLE JSON, overlay video
    static/         the page: plain HTML, JavaScript and a canvas, no build step
"""
