"""student_src: the small library the course notebooks call into.

Modules: ``assets`` (where files live, stand-in mode), ``data`` (CIFAR-10 test split),
``models`` (the hub ResNet-18 and transformers classifiers), ``viz`` (plots),
``checks`` (self-checks), ``library_cams`` (pytorch-grad-cam wrappers for comparisons and
fallbacks), ``fetch`` (downloads: ``python -m student_src.fetch``).
It holds no solutions: students get all of it.
"""

__version__ = "0.1.0"
