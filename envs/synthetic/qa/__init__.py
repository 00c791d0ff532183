"""Question-answering data embedded in a synthetic world, in the real released layouts.

``build_qa`` (:mod:`envs.synthetic.qa.writer`) reads a finished world's scene files and
skyboxes and writes, under ``DIR/qa/``, VQA v2, SNLI-VE and VCR files whose images are the
world's own rendered views and whose answers come from the scene annotations. It draws
from its own random stream, so the navigation files of a world never change.
"""
