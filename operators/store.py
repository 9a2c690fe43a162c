"""Operator: status of the Milvus store the workbench uses (starts the local one)."""

import fiftyone.operators.types as types
from pymilvus.exceptions import MilvusException

from plugin.errors import VideoRagError, scrub
from plugin.settings import Settings

from .forms import WorkbenchOperator, message_of


class MilvusStoreStatus(WorkbenchOperator, label="Milvus store status"):
    """Shows which Milvus store the workbench uses, and starts the managed local store
    if it is the one in use.
    """

    def resolve_input(self, ctx):
        return None  # no form: runs when picked

    def run(self, ctx):
        settings = Settings.load(ctx.secrets)
        try:
            connection = settings.milvus()
            collections = connection.client(timeout=3).list_collections()
        except (VideoRagError, MilvusException) as e:  # the status IS the error
            status = scrub(message_of(e), settings.secret_values())
            return {"kind": "?", "uri": "?", "status": status, "collections": []}
        return {
            "kind": connection.kind,
            "uri": connection.display_uri,
            "status": "reachable",
            "collections": sorted(collections),
        }

    def outputs(self, ctx, outputs):
        outputs.str("kind", label="Store kind")
        outputs.str("uri", label="URI (credentials hidden)")
        outputs.str("status", label="Status")
        outputs.list("collections", types.String(), label="Collections")
