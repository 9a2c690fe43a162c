"""Core of the FiftyOne video-RAG workbench.

Everything here works without the FiftyOne App: video sampling, transcription,
embedding models, the Milvus connection, retrieval and answering. The App
adapters in ``operators/`` and ``panels/`` only parse inputs and call this.

Imported as the top-level name ``plugin``; the repo root's ``__init__.py``
checks at load that this name is ours (see ``__vrag__``). Importing it
changes nothing in other libraries: a process calls
:func:`plugin.runtime.prepare_process` for that.
"""

__version__ = "0.1.0"
__vrag__ = True  # marks this package as the workbench's core
