"""Jobs that write a trained model in another form: `quantize.quantize_model`, the int8
ONNX graph calibrated on the run's training films (`cxr export --format onnx-int8`).

The float ONNX export itself belongs to the classifier (`Classifier.export_onnx`,
`cxrkit.classifier.onnx_export`); this job builds on it and on a `Classifier` to measure
what int8 costs.
"""
