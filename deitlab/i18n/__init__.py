"""Translations: the kit's runtime messages and the notebooks' Japanese, Chinese and Vietnamese editions.

``languages`` and ``runtime`` need only the standard library (they run in every notebook);
``catalogue``, ``editions``, ``kit_messages`` and ``status`` use polib and run at build time
(``make translations`` → ``python -m deitlab.i18n``).
"""
