"""The steps' products, one module per step (named as in lib.pipeline.registry): each function returns its
product, loading it when it was made before and making it now otherwise (inputs included, with progress bars).

The notebooks call these, so one opened in JupyterLab runs top to bottom without `make report` having run
first; under `make report` every input already exists and is only loaded. This file imports nothing, so a
notebook's code key covers only the step modules it imports.
"""
