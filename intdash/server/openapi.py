"""The OpenAPI 3.1 description of intdash's HTTP API, served at ``/v1/openapi.json``.

The request schemas come from the same pydantic models that validate the requests, and their
patterns are the very expressions the server matches (:mod:`intdash.server.formats`), so the
document cannot drift from what the server accepts.
"""

from __future__ import annotations

import json
from typing import Any

from intdash.server.formats import EXTERNAL_ID_SCHEMA
from intdash.server.invoice_in import BATCH_MAX, BatchIn

REF = "#/components/schemas/{model}"
SECONDS = {"type": "integer", "minimum": 0}
EXAMPLE = {
    "external_id": "ERP-1001",
    "number": "INV-1001",
    "contact": "Kowhai Cafe",
    "issue_date": "2026-11-02",
    "due_date": "2026-12-02",
    "currency": "NZD",
    "tax": "15.00",
    "total": "115.00",
    "status": "AUTHORISED",
    "updated_at": "2026-11-02T09:00:00+13:00",
}

XERO_INVOICE = "4f0e8d3c-2b1a-4c9d-8e7f-6a5b4c3d2e1f"
XERO_EVENTS = {
    "events": [
        {
            "resourceUrl": f"https://api.xero.com/api.xro/2.0/Invoices/{XERO_INVOICE}",
            "resourceId": XERO_INVOICE,
            "eventDateUtc": "2026-12-01T10:15:39.902",
            "eventType": "UPDATE",
            "eventCategory": "INVOICE",
            "tenantId": "9d2c1bd0-5ad4-4e8a-9f0b-7e1f3a0c2d11",
            "tenantType": "ORGANISATION",
        }
    ],
    "firstEventSequence": 7,
    "lastEventSequence": 7,
    "entropy": "QWERTYUIOPASDFGHJKLZ",
}


def _error(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        answer["headers"] = {
            name.replace("_", "-"): {"required": True, **header} for name, header in headers.items()
        }
    return answer


def _taken(description: str) -> dict[str, Any]:
    either = [
        {"$ref": REF.format(model="StoredInvoice")},
        {"$ref": REF.format(model="BatchResult")},
    ]
    read = {
        "operationId": "getInvoice",
        "parameters": {"external_id": "$response.body#/external_id"},
        "description": "The invoice pushed (one invoice; of a batch, each of invoices[] has "
        "its external_id).",
    }
    return {
        "description": description,
        "content": {"application/json": {"schema": {"oneOf": either}}},
        "links": {"GetInvoice": read},
    }


def _schemas() -> dict[str, Any]:
    batch = BatchIn.model_json_schema(ref_template=REF)
    schemas: dict[str, Any] = dict(batch.pop("$defs", {}))
    # named as the document names them (the request models' class names end in In)
    for model, name in (
        ("InvoiceIn", "Invoice"),
        ("LineItemIn", "LineItem"),
        ("PaymentIn", "Payment"),
    ):
        schemas[name] = schemas.pop(model)
    schemas = json.loads(
        json.dumps(schemas)
        .replace(REF.format(model="LineItemIn"), REF.format(model="LineItem"))
        .replace(REF.format(model="PaymentIn"), REF.format(model="Payment"))
    )
    batch["properties"]["invoices"]["items"] = {"$ref": REF.format(model="Invoice")}
    schemas["Batch"] = batch
    fiscal = {
        "type": "object",
        "description": "An entry of the fiscal register: a sale, a refund of one, or a credit "
        "(a credit note's own amounts refunded against another invoice's sale).",
        "properties": {
            "seq": {"type": "integer", "description": "Its number in the register."},
            "kind": {"type": "string", "enum": ["sale", "refund", "credit"]},
            "refers_to": {
                "type": ["integer", "null"],
                "description": "A refund or a credit: the number of the sale it refunds.",
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
    signing = {
        "status": {
            "type": "string",
            "enum": ["pending", "sent", "signed", "failed"],
            "description": "pending: to be sent to the SDC (a push is answered before it is: "
            "read the invoice again later); sent: sent, its answer awaited (a time-out is "
            "reconciled, never signed twice); signed: the SDC signed it; failed: the SDC "
            "refused it (see error), sent again once the operator has acted.",
        },
        "sdc_invoice_number": {
            **text,
            "description": "The SDC's invoice number (requestedBy-signedBy-counter), once signed.",
        },
        "sdc_time": {**text, "description": "The SDC's sdcDateTime, as it wrote it."},
        "invoice_counter": {
            **text,
            "description": "The SDC's invoiceCounter (e.g. 12/34NS), once signed.",
        },
        "verification_url": {
            **text,
            "description": "Where anyone can verify the signed invoice (the QR code's URL).",
        },
        "error": {**text, "description": "Why it is not signed yet: the SDC's refusal, or why "
                  "it could not be reached."},
    }  # fmt: skip
    required = ["status", "sdc_invoice_number", "sdc_time", "verification_url", "error"]
    schemas["SdcSigning"] = {
        "type": "object",
        "description": "What TaxCore's V-SDC made of a sale or a refund.",
        "properties": signing,
        "required": required,
    }
    schemas["Sdc"] = {
        "type": "object",
        "description": "What TaxCore's V-SDC made of the invoice's latest sale, and of its refund.",
        "properties": {
            **signing,
            "refund": {
                "description": "The refund of that sale, when it was refunded.",
                "oneOf": [{"$ref": REF.format(model="SdcSigning")}, {"type": "null"}],
            },
        },
        "required": [*required, "refund"],
    }
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
            "kind": {"type": "string", "enum": ["sales", "purchase", "credit note"]},
            "credits": {
                "type": ["string", "null"],
                "description": "A credit note's: the external_id of the invoice it credits.",
            },
            "contact": text,
            "issue_date": {"type": ["string", "null"], "format": "date"},
            "due_date": {"type": ["string", "null"], "format": "date"},
            "currency": {"type": "string"},
            "subtotal": {"type": "string"},
            "tax": {"type": "string"},
            "total": {"type": "string"},
            "status": text,
            "updated_at": {"type": ["string", "null"], "format": "date-time"},
            "items": {
                "type": "array",
                "items": {"$ref": REF.format(model="LineItem")},
                "description": "Its lines as stored (amounts as decimal strings).",
            },
            "buyer_tax_id": text,
            "payments": {"type": "array", "items": {"$ref": REF.format(model="Payment")}},
            "fiscal_status": {
                "type": "string",
                "enum": [
                    "fiscalized",
                    "held",
                    "awaiting approval",
                    "awaiting invoice",
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
                "received: a purchase invoice, kept but not fiscalized; awaiting invoice: a "
                "credit note whose invoice is not fiscalized (or that names none), credited "
                "once it is.",
            },
            "received_at": {"type": "string", "format": "date-time"},
            "fiscal_record": {
                "description": "Its latest sale in the fiscal register (a credit note's: its "
                "credit).",
                "oneOf": [{"$ref": REF.format(model="FiscalRecord")}, {"type": "null"}],
            },
            "refund_record": {
                "description": "The refund of that sale, when it was refunded.",
                "oneOf": [{"$ref": REF.format(model="FiscalRecord")}, {"type": "null"}],
            },
            "sdc": {
                "description": "Its fiscalization by TaxCore's V-SDC "
                "(INTDASH_FISCAL__REGISTER=vsdc): null with the local register, or while "
                "the SDC has nothing of it (held, a draft, a purchase, or recorded before "
                "the V-SDC was the register).",
                "oneOf": [{"$ref": REF.format(model="Sdc")}, {"type": "null"}],
            },
        },
        "required": [
            "external_id",
            "kind",
            "currency",
            "total",
            "fiscal_status",
            "fiscal_record",
            "sdc",
        ],
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
            "error": {
                "type": "string",
                "description": "A code: not_json, empty, invalid, unauthorized, forbidden, "
                "not_found, method_not_allowed, conflict, too_large, unsupported_media_type, "
                "rate_limited, busy, disk_full, read_only, webhooks_off, …",
            },
            "message": {"type": "string", "description": "What is wrong, in words."},
            "problems": {
                "type": "array",
                "description": "With 422: each field at fault, such as invoices[3].total.",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "problem": {"type": "string"}},
                    "required": ["field", "problem"],
                },
            },
        },
        "required": ["error", "message"],
    }
    guid = {"type": "string", "description": "A Xero GUID."}
    schemas["XeroEvent"] = {
        "type": "object",
        "description": "One change in a Xero organisation (the record itself is not sent).",
        "properties": {
            "resourceUrl": {"type": "string"},
            "resourceId": guid,
            "eventDateUtc": {"type": "string"},
            "eventType": {"type": "string", "description": "CREATE or UPDATE."},
            "eventCategory": {
                "type": "string",
                "minLength": 1,
                "description": "INVOICE and CREDITNOTE bring a sync; others (CONTACT, …) are "
                "acknowledged and ignored.",
            },
            "tenantId": {**guid, "minLength": 1, "description": "The organisation."},
            "tenantType": {"type": "string", "description": "ORGANISATION."},
        },
        "required": ["eventCategory", "tenantId"],
    }
    schemas["XeroDelivery"] = {
        "type": "object",
        "description": "A delivery of Xero's webhook; with no events, its intent to receive.",
        "properties": {
            "events": {"type": "array", "items": {"$ref": REF.format(model="XeroEvent")}},
            "firstEventSequence": {"type": "integer"},
            "lastEventSequence": {"type": "integer"},
            "entropy": {"type": "string"},
        },
        "required": ["events"],
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
    health = {"application/json": {"schema": {"$ref": REF.format(model="Health")}}}
    busy = _error(
        "intdash serves as many connections as it may: retry after Retry-After seconds.",
        Retry_After={"schema": SECONDS},
    )
    refused = {
        "401": _error(
            "No API key, or an unknown or revoked one.",
            WWW_Authenticate={"schema": {"type": "string"}, "description": "Bearer"},
        ),
        "403": _error("The key's integration is removed, disabled or its licence lapsed."),
        "422": _error("A field is missing or wrong: see problems."),
        "429": _error(
            "Over the key's rate limit: retry after Retry-After seconds.",
            Retry_After={"schema": SECONDS},
        ),
        "503": _error(
            "intdash cannot take it now: it serves as many connections as it may (busy), or "
            "its database cannot store (disk_full, read_only; nothing was stored). Retry after "
            "Retry-After seconds.",
            Retry_After={"schema": SECONDS},
        ),
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "intdash",
            "version": version,
            "description": "Push invoices of a Custom Integration to fiscalization. Pushing an "
            "invoice again (same external_id) updates it and never makes a duplicate, so a "
            "request can always be retried. Xero's webhook posts its signed events here too.",
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
                                },
                                "examples": {
                                    "one": {"summary": "One invoice", "value": EXAMPLE},
                                    "batch": {
                                        "summary": "A batch",
                                        "value": {
                                            "invoices": [
                                                {**EXAMPLE, "external_id": "ERP-1002"},
                                                {
                                                    "external_id": "ERP-1003",
                                                    "currency": "NZD",
                                                    "total": 57.5,
                                                    "status": "draft",
                                                },
                                            ]
                                        },
                                    },
                                },
                            }
                        },
                    },
                    "responses": {
                        "200": _taken("Taken; nothing new (updated or unchanged)."),
                        "201": _taken("Taken; at least one invoice is new."),
                        "400": _error(
                            "The body is not JSON, is empty, names a field twice in one object "
                            "or holds a lone UTF-16 surrogate."
                        ),
                        "409": _error("The same invoices are being pushed at once: retry."),
                        "413": _error("The body is over the size limit."),
                        "415": _error("The body is not application/json."),
                        **refused,
                        "422": _error(
                            "A field is missing or wrong, or a batch holds one external_id "
                            "twice: see problems (each names its field, such as "
                            "invoices[3].total). Nothing of the request was stored."
                        ),
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
                            "example": EXAMPLE["external_id"],
                            "description": "As it was pushed, percent-encoded (a '/' in it may "
                            "be sent as it is).",
                            "schema": {
                                k: v for k, v in EXTERNAL_ID_SCHEMA.items() if k != "description"
                            },
                        }
                    ],
                    "responses": {
                        "200": {"description": "The invoice.", "content": stored},
                        "404": _error("No invoice with that external id."),
                        **refused,
                        "422": _error(
                            "The external id could never have been pushed (see problems)."
                        ),
                    },
                }
            },
            "/v1/webhooks/xero": {
                "post": {
                    "operationId": "xeroWebhook",
                    "summary": "Xero's signed events (the URL of the Xero app's webhook)",
                    "description": "Verified with the webhook key (INTDASH_XERO__WEBHOOK_KEY) "
                    "over the raw body before anything is read from it. Invoice and credit-note "
                    "events bring their organisations' integrations' next sync forward to "
                    "within seconds on the Scale plan (other plans sync at their next slot); "
                    "a body received before is acknowledged and ignored.",
                    "security": [],
                    "parameters": [
                        {
                            "name": "x-xero-signature",
                            "in": "header",
                            "required": True,
                            "description": "Base64 of HMAC-SHA256 of the raw body, keyed with "
                            "the webhook key.",
                            "schema": {"type": "string"},
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": REF.format(model="XeroDelivery")},
                                "examples": {
                                    "intent": {
                                        "summary": "Intent to receive",
                                        "value": {
                                            "events": [],
                                            "firstEventSequence": 0,
                                            "lastEventSequence": 0,
                                            "entropy": "GKDYQHCTTIQAHCOFLKKZ",
                                        },
                                    },
                                    "invoice": {
                                        "summary": "An invoice edited",
                                        "value": XERO_EVENTS,
                                    },
                                },
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "Taken (an intent to receive, events, events of an "
                            "organisation no integration is connected to, or a delivery "
                            "received before); the body is empty, as Xero wants it."
                        },
                        "400": _error(
                            "Signed right, but not a delivery: not JSON, or no events list, or "
                            "an event without its eventCategory or tenantId."
                        ),
                        "401": {
                            "description": "The signature is missing or wrong; the body is "
                            "empty, as Xero's intent to receive wants it."
                        },
                        "413": _error("The body is over the size limit."),
                        "503": _error(
                            "Not taken now: webhooks are off (webhooks_off: "
                            "INTDASH_XERO__WEBHOOK_KEY is unset), intdash serves as many "
                            "connections as it may (busy), or its database cannot store "
                            "(disk_full, read_only), with Retry-After. Xero delivers again."
                        ),
                    },
                }
            },
            "/v1/health": {
                "get": {
                    "operationId": "health",
                    "summary": "Whether intdash and its database answer",
                    "security": [],
                    "responses": {
                        "200": {"description": "Up.", "content": health},
                        "503": {
                            "description": "The database does not answer (Health), or intdash "
                            "serves as many connections as it may (Error, with Retry-After).",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "oneOf": [
                                            {"$ref": REF.format(model="Health")},
                                            {"$ref": "#/components/schemas/Error"},
                                        ]
                                    }
                                }
                            },
                        },
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "summary": "This document",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "The OpenAPI document.",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "503": busy,
                    },
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
            "responses": {
                "MethodNotAllowed": _error(
                    "405, to a method a path does not list here; Allow names those it does.",
                    Allow={"schema": {"type": "string"}},
                ),
                "NotFound": _error("404, to a path not listed here."),
            },
        },
    }
