"""Explorers for notebook 05 (Lesson 15): a convolution whose knobs a learner can turn,
and a trained model's feature maps layer by layer.

:class:`ConvolutionExplorer` and :class:`FeatureMapExplorer` are ipywidgets that work in
JupyterLab, classic Jupyter and Colab (:mod:`jaxdl.explore.widgets`); what they show is
computed by the pure functions of :mod:`jaxdl.explore.convolution` (with
:func:`jaxdl.conv.conv2d`, and receptive fields with ``jax.grad``) and
:mod:`jaxdl.explore.features`, which a notebook or a test can call directly::

    from jaxdl.explore import ConvolutionExplorer, convolution

    ConvolutionExplorer({"digit": mnist.test, "garment": fashion.test})   # in a notebook cell
    view = convolution.convolution_view(digit, convolution.named_kernel("top edge"),
                                        convolution.Geometry(3, stride=2, padding=1))
    view.formula    # '⌊(28 + 2·1 − 3) / 2⌋ + 1 = 14'
"""

from jaxdl.support.lazy import lazy_names

_NAMES = {"ConvolutionExplorer": "widgets", "FeatureMapExplorer": "widgets",
          **{module: module for module in ("convolution", "features", "widgets")}}

__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_names(__name__, _NAMES)
