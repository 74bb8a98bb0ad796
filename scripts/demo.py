"""`make demo`: the pipeline on the toy world. (Placeholder until the stages land: builds the toy world.)"""
