"""The web chat widget: ``/widget.js``, its transport under ``/widget/v1/`` and the demo page."""
