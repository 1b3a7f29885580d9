"""The OpenAPI 3.1 description of intdash's HTTP API, served at ``/v1/openapi.json``.

The request schemas come from the same pydantic models that validate the requests, so the
document cannot drift from what the server accepts.
"""

from __future__ import annotations

from typing import Any

from intdash.server.ingest import BATCH_MAX, BatchIn, InvoiceIn

REF = "#/components/schemas/{model}"


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _taken(description: str) -> dict[str, Any]:
    either = [
        {"$ref": REF.format(model="StoredInvoice")},
        {"$ref": REF.format(model="BatchResult")},
    ]
    return {
        "description": description,
        "content": {"application/json": {"schema": {"oneOf": either}}},
    }


def _schemas() -> dict[str, Any]:
    batch = BatchIn.model_json_schema(ref_template=REF)
    schemas: dict[str, Any] = dict(batch.pop("$defs", {}))
    schemas["Batch"] = batch
    schemas.setdefault("Invoice", InvoiceIn.model_json_schema(ref_template=REF))
    fiscal = {
        "type": "object",
        "description": "An entry of the fiscal register: a sale, or a refund of one.",
        "properties": {
            "seq": {"type": "integer", "description": "Its number in the register."},
            "kind": {"type": "string", "enum": ["sale", "refund"]},
            "refers_to": {
                "type": ["integer", "null"],
                "description": "A refund: the number of the sale it refunds.",
            },
            "recorded_at": {"type": "string", "format": "date-time"},
            "invoice_digest": {"type": "string", "description": "SHA-256 of the invoice."},
            "prev_hash": {"type": "string"},
            "hash": {"type": "string", "description": "SHA-256 chained over the one before."},
        },
        "required": ["seq", "recorded_at", "invoice_digest", "prev_hash", "hash"],
    }
    text = {"type": ["string", "null"]}
    schemas["FiscalRecord"] = fiscal
    schemas["StoredInvoice"] = {
        "type": "object",
        "properties": {
            "outcome": {
                "type": "string",
                "enum": ["created", "updated", "unchanged"],
                "description": "What this request did to it (absent when read).",
            },
            "external_id": {"type": "string"},
            "number": text,
            "kind": {"type": "string", "enum": ["sales", "purchase"]},
            "contact": text,
            "issue_date": {"type": ["string", "null"], "format": "date"},
            "due_date": {"type": ["string", "null"], "format": "date"},
            "currency": {"type": "string"},
            "subtotal": {"type": "string"},
            "tax": {"type": "string"},
            "total": {"type": "string"},
            "status": text,
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "fiscal_status": {
                "type": "string",
                "enum": [
                    "fiscalized",
                    "held",
                    "awaiting approval",
                    "refunded",
                    "voided",
                    "received",
                ],
                "description": "fiscalized: its sale is in the register (a change of its "
                "total, tax or currency refunds that sale and records a new one); held: issued "
                "but over the plan's monthly limit, fiscalized once there is room; awaiting "
                "approval: a draft, fiscalized once issued; refunded: fiscalized, then voided "
                "(or made a draft again), so its sale was refunded; voided: voided before it "
                "was fiscalized, so it is not (unless issued again); "
                "received: a purchase invoice, kept but not fiscalized.",
            },
            "received_at": {"type": "string", "format": "date-time"},
            "fiscal_record": {
                "description": "Its latest sale in the fiscal register.",
                "oneOf": [{"$ref": REF.format(model="FiscalRecord")}, {"type": "null"}],
            },
            "refund_record": {
                "description": "The refund of that sale, when it was refunded.",
                "oneOf": [{"$ref": REF.format(model="FiscalRecord")}, {"type": "null"}],
            },
        },
        "required": ["external_id", "kind", "currency", "total", "fiscal_status", "fiscal_record"],
    }
    count = {"type": "integer", "minimum": 0}
    schemas["BatchResult"] = {
        "type": "object",
        "properties": {
            "created": count,
            "updated": count,
            "unchanged": count,
            "held": count,
            "invoices": {"type": "array", "items": {"$ref": REF.format(model="StoredInvoice")}},
        },
        "required": ["created", "updated", "unchanged", "held", "invoices"],
    }
    schemas["Error"] = {
        "type": "object",
        "properties": {
            "error": {"type": "string", "description": "A code: invalid, unauthorized, …"},
            "message": {"type": "string", "description": "What is wrong, in words."},
            "problems": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
                    "required": ["field", "problem"],
                },
            },
        },
        "required": ["error", "message"],
    }
    schemas["Health"] = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "version": {"type": "string"},
            "database": {"type": "string"},
            "scheduler": {"type": "object"},
        },
        "required": ["status", "version", "database"],
    }
    return schemas


def openapi_document(version: str) -> dict[str, Any]:
    stored = {"application/json": {"schema": {"$ref": REF.format(model="StoredInvoice")}}}
    refused = {
        "401": _error("No API key, or an unknown or revoked one."),
        "403": _error("The key's integration is removed, disabled or its licence lapsed."),
        "429": {
            **_error("Over the key's rate limit: retry after Retry-After seconds."),
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "intdash",
            "version": version,
            "description": "Push invoices of a Custom Integration to fiscalization. Pushing an "
            "invoice again (same external_id) updates it and never makes a duplicate, so a "
            "request can always be retried.",
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/v1/invoices": {
                "post": {
                    "operationId": "pushInvoices",
                    "summary": f"Push one invoice, or a batch of up to {BATCH_MAX:,}",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        {"$ref": REF.format(model="Invoice")},
                                        {"$ref": REF.format(model="Batch")},
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": _taken("Taken; nothing new (updated or unchanged)."),
                        "201": _taken("Taken; at least one invoice is new."),
                        "400": _error("The body is not JSON."),
                        "409": _error("The same invoices are being pushed at once: retry."),
                        "413": _error("The body is over the size limit."),
                        "415": _error("The body is not application/json."),
                        "422": _error("A field is missing or wrong: see problems."),
                        **refused,
                    },
                }
            },
            "/v1/invoices/{external_id}": {
                "get": {
                    "operationId": "getInvoice",
                    "summary": "An invoice pushed before, with its fiscal record",
                    "parameters": [
                        {
                            "name": "external_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {"description": "The invoice.", "content": stored},
                        "404": _error("No invoice with that external id."),
                        **refused,
                    },
                }
            },
            "/v1/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Whether intdash and its database answer",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Up.",
                            "content": {
                                "application/json": {"schema": {"$ref": REF.format(model="Health")}}
                            },
                        },
                        "503": {"description": "The database does not answer."},
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document."}},
                }
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A Custom Integration's API key (idk_…), made in the "
                    "dashboard or with 'intdash keys create'.",
                }
            },
            "schemas": _schemas(),
        },
    }
