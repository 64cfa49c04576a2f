"""Translations: the kit's runtime messages and the notebooks' Japanese, Chinese and Vietnamese editions.

Run in every notebook (standard library and matplotlib only): ``languages`` (the codes),
``runtime`` (which language the kit speaks, message lookup), ``fonts`` (a CJK font for plots).
Build time (polib; ``make translations`` → ``python -m deitlab.i18n``): ``catalogue`` (one notebook's
``.pot``/``.po``), ``kit_messages`` (the kit's own messages), ``editions`` (writing ja/zh/vi),
``workflow`` (the steps over the repository), ``status`` (completeness), ``lab`` (JupyterLab's UI language).
"""
