"""What the course's modules lean on, below all of them: writing files whole
(:mod:`~jaxdl.support.files`), checking class labels (:mod:`~jaxdl.support.labels`), and
where jaxdl is installed from (:mod:`~jaxdl.support.project`: the install hints in error
messages and the notebooks' Colab cell).

Nothing here imports the rest of jaxdl but :mod:`jaxdl.errors`.
"""
