"""The evaluation wing: evaluate a trained model.

suite.py            evaluate_model: the test/* extras after testing
finished_run.py     ae-eval's core: re-test a finished run's checkpoint and evaluate it
probe.py            the linear probe on the codes
anomaly.py          anomaly detection by reconstruction error
likelihood.py       the importance-weighted test likelihood (test/nll)
consistency.py      class consistency of a conditional model's samples
disentanglement.py  MIG, DCI, SAP and the FactorVAE score on data with known factors
reference.py        the reference network whose features the sample-quality scores use
sample_quality.py   Fréchet distance, precision and recall of samples and reconstructions
inception.py        the optional standard FID from a local Inception weights file
predict.py          ae-predict: a trained model on new images
inputs.py           reading and checking ae-predict's inputs
"""
