"""The RESP commands, one module per Redis command family (``connection``, ``server``,
``strings``, ``keys``, ``pubsub``). Each module ends with ``COMMANDS``, its rows of the
command table that ``dispatch.py`` puts together."""
