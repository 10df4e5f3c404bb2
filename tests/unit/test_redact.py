"""redact(): planted secrets of every shape are masked wherever they sit; ordinary values are kept."""

from __future__ import annotations

import json
import re

import pytest

from ragops.config import is_secret_field, redact

# Distinctive planted values: none may survive redaction, in any structure or string.
PLANTED = {
    "OPENAI_KEY": "plant-openai-1f9a",
    "AZURE_STORAGE_KEY": "plant-azkey-2b8c",
    "account_key": "plant-acctkey-3c7d",
    "sas": "plant-sas-4d6e",
    "sas_token": "plant-sastoken-5e5f",
    "secret": "plant-s3secret-6f4a",
    "client_secret": "plant-client-7a3b",
    "aws_secret_access_key": "plant-aws-8b2c",
    "AWS_SESSION_TOKEN": "plant-awssess-9c1d",
    "connection_string": "plant-connstr-0d0e",
    "Authorization": "plant-authz-1e1f",
    "private_key": "plant-pkey-2f2a",
    "api-key": "plant-apikey-3a3b",
    "db_password": "plant-dbpw-4b4c",
}
IN_STRINGS = {
    "dsn": "postgresql://ragops:plant-dsnpw-5c5d@db:5432/ragops?sslmode=require",
    "redis": "redis://:plant-redispw-6d6e@cache:6379/0",
    "azure": ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=plant-azconn-7e7f==;"
              "EndpointSuffix=core.windows.net"),
    "servicebus": ("Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;"
                   "SharedAccessKey=plant-sbkey-8f8a="),
    "sas_conn": ("BlobEndpoint=https://a.blob.core.windows.net/;"
                 "SharedAccessSignature=sv=2022-11-02&ss=b&sig=plant-sig1-9a9b%3D"),
    "sas_url": "https://a.blob.core.windows.net/c/blob?sv=2022-11-02&se=2030-01-01&sp=r&sig=plant-sig2-0b0c%2B",
    "presigned": ("https://b.s3.amazonaws.com/k?X-Amz-Credential=AKIA/x&X-Amz-Security-Token=plant-amztok-1c1d"
                  "&X-Amz-Signature=plant-amzsig-2d2e"),
    "header": "Authorization: Bearer plant-bearer-3e3f.abc.def",
    "log": "calling https://api.openai.com/v1 with OPENAI_KEY=plant-envline-4f4a and --account-key plant-flag-5a5b",
    "shell": 'export AZURE_STORAGE_KEY="plant-export-0a1b" && train --password=plant-pwflag-1b2c',
    "auth_basic": "authorization=Basic plant-basic-2c3d",
    "odbc": "Driver={ODBC};Server=s;Uid=u;Pwd=plant-odbc-6b6c;",
    "json_text": '{"account_key": "plant-jsontext-7c7d", "container": "models"}',
    "repr_text": "{'sas_token': 'plant-reprtext-8d8e', 'region': 'eu'}",
    "slack": "https://hooks.slack.com/services/T000/B000/plant-slackhook-9e9f",
    "openai_shape": "the key sk-proj-plantshape0123456789abcd leaked into a message",
}
KEPT = {
    "run_key": "rag_index__manual__2026-01-01", "train_key": "abc123", "cache_key": "c1", "alias": "RagDocs",
    "max_tokens": 256, "secret_env_from": ["ragops-trainer"], "token_count": 12, "keyword": "vacuum",
    "artifact_root": "s3://aws_default@bucket/ragops", "url": "https://example.com/docs?page=2&lang=en",
    "path": "/data/passwords-policy.md", "empty_password": "",
}


def test_planted_secrets_never_survive():
    nested = {"env": dict(PLANTED), "storage_options": {"account_key": PLANTED["account_key"], "sas": PLANTED["sas"]},
              "strings": dict(IN_STRINGS), "list": [dict(PLANTED), list(IN_STRINGS.values())], "kept": dict(KEPT)}
    dumped = json.dumps(redact(nested))
    planted = set(re.findall(r"plant-?[a-z0-9]+", json.dumps(nested)))
    assert len(planted) >= len(PLANTED) + len(IN_STRINGS)
    assert sorted(p for p in planted if p in dumped) == []


def test_ordinary_values_are_kept():
    assert redact(dict(KEPT)) == KEPT
    assert redact(IN_STRINGS["dsn"]) == "postgresql://ragops:***@db:5432/ragops?sslmode=require"
    assert redact(IN_STRINGS["azure"]).startswith("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=***;")
    assert "se=2030-01-01&sp=r&sig=***" in redact(IN_STRINGS["sas_url"])
    assert redact(IN_STRINGS["header"]) == "Authorization: Bearer ***"
    assert redact({"api_key": "sk-1", "nested": [{"password": "p"}], "alias": "Docs"}) == {
        "api_key": "***", "nested": [{"password": "***"}], "alias": "Docs"}


@pytest.mark.parametrize("name", ["OPENAI_KEY", "openai_key", "AZURE_STORAGE_KEY", "account_key", "AccountKey", "sas",
                                  "SAS_TOKEN", "api-key", "x-api-key", "client_secret", "AWS_SECRET_ACCESS_KEY",
                                  "GITHUB_TOKEN", "password", "DB_PASS", "authorization", "credentials",
                                  "connection_string", "private_key"])
def test_secret_fields(name):
    assert is_secret_field(name)


@pytest.mark.parametrize("name", ["run_key", "train_key", "cache_key", "max_tokens", "token_count", "secret_env",
                                  "secret_env_from", "keyword", "alias", "passage", "dsn", "key", "monkey"])
def test_fields_that_are_not_secret(name):
    assert not is_secret_field(name)
