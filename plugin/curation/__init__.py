"""Browse and curate a frame index's embeddings (with fiftyone-brain).

- :mod:`.frame_map`: the frames as a 2-D map for the App's Embeddings panel
- :mod:`.duplicates`: near-duplicate frames, within and across videos; tag
  or delete the extras with every index kept in sync
- :mod:`.storyboard`: the k most representative frames of each video

All three read the vectors a frame index keeps in its embeddings field
(``<brain_key>_embedding``, :mod:`.vectors`): brain's Milvus backend cannot
return all of its vectors, and nothing here needs Milvus but the deletion.
"""
