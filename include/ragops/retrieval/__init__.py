"""One query path for evaluation, the gates, the CLI and the service.

    path = Retriever(svc, "RagDocs")            # follows the alias: model, fusion, reranker, citations
    result = path.search("how do I restore a backup", k=5, mode="hybrid", rerank=False)
    for hit in result.hits: hit.citation        # chunk, document, location, heading path, span

Modules: ``fusion`` (RRF or weighted, a parameter of the collection), ``path`` (the stages over one
collection version), ``retriever`` (the live alias), ``rerank`` (the second stage's protocol),
``citations`` (spans and locations from the lineage), ``tuning`` (fusion chosen on labelled queries).
"""

from ragops.retrieval.citations import CitationIndex, chunk_spans
from ragops.retrieval.fusion import DEFAULT_FUSION, FUSION_METHODS, FusionConfig, fuse, fusion_of
from ragops.retrieval.hits import Citation, Hit, SearchResult, Version
from ragops.retrieval.path import MODES, EncoderUnavailable, QueryPath
from ragops.retrieval.rerank import DEFAULT_RERANK_TOP_N, IdentityReranker, Reranker
from ragops.retrieval.retriever import ModelPool, NotReady, Retriever, UnknownCollection
from ragops.retrieval.tuning import FusionTuning, fusion_candidates, tune_fusion, tune_fusion_report

__all__ = [
    "DEFAULT_FUSION", "DEFAULT_RERANK_TOP_N", "FUSION_METHODS", "MODES", "Citation", "CitationIndex",
    "EncoderUnavailable", "FusionConfig", "FusionTuning", "Hit", "IdentityReranker", "ModelPool", "NotReady",
    "QueryPath", "Reranker", "Retriever", "SearchResult", "UnknownCollection", "Version", "chunk_spans", "fuse",
    "fusion_candidates", "fusion_of", "tune_fusion", "tune_fusion_report",
]
