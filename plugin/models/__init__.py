"""Every model the workbench loads, in three registries (one per kind).

Each registry turns a user-given name into what will be loaded (``resolve_*``,
which only looks things up: no download, no file written), loads it
(``load_*``, cached where loading is slow) and lists the choices for forms
and error messages (``*_choices``). Unknown names raise
:class:`plugin.errors.UnknownModelError`, listing the choices.

- :mod:`plugin.models.image_text`: image-text embedders for frame search
  (OpenCLIP, AltCLIP, Hugging Face zero-shot models, FiftyOne zoo names, the
  offline LiT model): ``resolve_image_text_model``, ``load_image_text_model``,
  ``load_model_or_offline``, ``image_text_model_choices``,
  ``DEFAULT_IMAGE_TEXT_MODEL``.
- :mod:`plugin.models.speech`: Whisper backends and models for transcription
  (packaged ``tiny.en`` and ``base``, local folders, hub names):
  ``resolve_speech_model``, ``load_speech_model``, ``speech_model_choices``,
  ``whisper_device``, ``DEFAULT_SPEECH_BACKEND``, ``DEFAULT_SPEECH_MODEL``.
- :mod:`plugin.models.text`: text embedders for the transcript index
  (offline MiniLM, OpenAI-compatible endpoints): ``resolve_text_model``,
  ``load_text_embedder``, ``text_model_choices``, ``DEFAULT_TEXT_MODEL``.

The vision-language model that answers questions is served by vLLM, not
loaded here: its default name is :data:`plugin.settings.DEFAULT_VLM`.

Parts: :mod:`plugin.models.minilm` (the one shared all-MiniLM-L6-v2
instance), :mod:`plugin.models.lit` and :mod:`plugin.models.lit_fiftyone`
(the offline LiT model), :mod:`plugin.models.altclip`, :mod:`plugin.models.zoo`
(our models' FiftyOne zoo registration).
"""
