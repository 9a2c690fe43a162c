"""Core of the FiftyOne video-RAG workbench.

Everything here works without the FiftyOne App: video sampling, transcription,
embedding models, the Milvus connection, retrieval and answering. The App
adapters in ``operators/`` and ``panels/`` only parse inputs and call this.
"""

__version__ = "0.1.0"
