"""Operator: status of the Milvus store the workbench uses (starts the local one)."""

import fiftyone.operators as foo
import fiftyone.operators.types as types

from plugin.milvus import MilvusUnreachableError, check_reachable, resolve_milvus


class MilvusStoreStatus(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="milvus_store_status",
            label="Video RAG: Milvus store status",
            description="Shows which Milvus store the workbench uses, and "
            "starts the managed local store if it is the one in use",
        )

    def execute(self, ctx):
        try:
            connection = resolve_milvus(secrets=ctx.secrets)
            check_reachable(connection, timeout=3)
            collections = connection.client(timeout=5).list_collections()
            status = "reachable"
        except (MilvusUnreachableError, ValueError, RuntimeError) as e:
            return {"kind": "?", "uri": "?", "status": str(e), "collections": []}
        return {
            "kind": connection.kind,
            "uri": connection.display_uri,
            "status": status,
            "collections": sorted(collections),
        }

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("kind", label="Store kind")
        outputs.str("uri", label="URI (credentials hidden)")
        outputs.str("status", label="Status")
        outputs.list("collections", types.String(), label="Collections")
        return types.Property(outputs)
