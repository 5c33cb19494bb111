"""The review loop between the model and the UI: span edits, listings into the queue, model versions,
and corrections turned into training data. Runs the model (`dram`) and keeps results in `store`;
`store` itself never runs the model.
"""
