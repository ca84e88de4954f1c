"""transformers' common processor tests (`ProcessorTesterMixin`, unmodified from the installed
version's source distribution, see `_transformers_tests.py`) on `EdgeTamProcessor` and
`EdgeTamVideoProcessor`, with the checks of transformers' Sam2 / Sam2Video processor tests
written for our classes (the per-model test files are not in the sdist)."""

import unittest

import numpy as np
import torch

import _transformers_tests
from edgetam_hf import EdgeTamImageProcessor, EdgeTamProcessor, EdgeTamVideoProcessor

_processing_common = _transformers_tests.load("test_processing_common")


class _Sam2ProcessorChecks:
    """The checks of transformers' Sam2 / Sam2Video processor tests."""

    @classmethod
    def _setup_image_processor(cls):
        return EdgeTamImageProcessor()

    def prepare_image_inputs(self):
        return torch.randint(0, 256, size=(1, 3, 30, 400), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))

    def test_image_processor_no_masks(self):
        processor = self.get_processor()
        images = self.prepare_image_inputs()
        encoding = processor(images=images)
        for image in encoding.pixel_values:
            self.assertEqual(image.shape, (3, 1024, 1024))
        for original_size in encoding.original_sizes:
            np.testing.assert_array_equal(original_size, np.array([30, 400]))

    def test_post_process_masks(self):
        processor = self.get_processor()
        original_sizes = [[1764, 2646]]
        for masks, sizes in (
            ([torch.ones((1, 3, 5, 5))], original_sizes),
            ([torch.ones((1, 3, 5, 5))], torch.tensor(original_sizes)),
            ([np.ones((1, 3, 5, 5))], np.array(original_sizes)),
        ):
            self.assertEqual(processor.post_process_masks(masks, sizes)[0].shape, (1, 3, 1764, 2646))
        with self.assertRaises(TypeError):
            processor.post_process_masks([[1, 0], [0, 1]], np.array(original_sizes))


    @unittest.skip(reason="docs/differences.md: the preprocessing is the original's, fixed (do_normalize=False is refused)")
    def test_save_load_pretrained_additional_features(self):
        pass

    @unittest.skip(
        reason="no image tokens to replace; the check reads the class's first base, here our WritesItsOwnAutoMap "
        "(remote_code.py), not ProcessorMixin"
    )
    def test_replacement_offsets(self):
        pass


class EdgeTamProcessorCommonTest(_Sam2ProcessorChecks, _processing_common.ProcessorTesterMixin, unittest.TestCase):
    processor_class = EdgeTamProcessor


class EdgeTamVideoProcessorCommonTest(_Sam2ProcessorChecks, _processing_common.ProcessorTesterMixin, unittest.TestCase):
    processor_class = EdgeTamVideoProcessor

    @unittest.skip(
        reason="docs/differences.md: video frames are preprocessed as the original video predictor's (uint8 "
        "bicubic), not as the image processor's images"
    )
    def test_subprocessor_defaults_1_images(self):
        pass
