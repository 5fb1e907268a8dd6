"""The deployable student: one network that takes RGB pixels and returns logits, written as ONNX
or TorchScript (`python -m duda.export`) and run over folders of images (`python -m duda.predict`).
"""
