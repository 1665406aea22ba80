"""The ``/crm/v3/objects`` endpoints of the HubSpot simulator (docs/vendors/hubspot.md).

:class:`CrmApi` answers requests that already passed auth and rate limits; the
simulator holds the lock around it.
"""

from __future__ import annotations

import json
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import httpx

from simulators.hubspot.search import SearchError, search, validate_groups
from simulators.hubspot.store import (
    CONTACTS,
    CREATED_PROPERTY,
    MODIFIED_PROPERTY,
    OBJECT_TYPES,
    ObjectStore,
    Record,
    iso_ms,
    record_json,
    split_properties,
)

LIST_MAX = 100
SEARCH_MAX = 200
SEARCH_CAP = 10_000
BATCH_MAX = 100
JSON_TYPE = "application/json;charset=utf-8"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PATH = re.compile(r"^/crm/v3/objects/(?P<type>[a-z_]+)(?:/(?P<rest>.+))?$")


class ApiError(Exception):
    """A request HubSpot would refuse as a whole; becomes a standard error body."""

    def __init__(self, status: int, category: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.category, self.extra = status, category, extra


def json_response(
    status: int, body: object, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A JSON response with HubSpot's content type and a correlation id header."""
    content = json.dumps(body, separators=(",", ":")).encode("utf-8")
    extra = {"Content-Type": JSON_TYPE, "X-HubSpot-Correlation-Id": str(uuid.uuid4())}
    return httpx.Response(status, headers=extra | (headers or {}), content=content)


def error_body(category: str, message: str, **extra: Any) -> dict[str, Any]:
    """HubSpot's standard error: status, message, correlationId, category, extras."""
    return {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    } | extra


def _int(value: Any, name: str, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(str(value))
    except ValueError:
        raise ApiError(400, "VALIDATION_ERROR", f"{name} must be an integer") from None


def _properties(raw: dict[str, Any] | None) -> dict[str, str | None]:
    return {str(k): None if v is None else str(v) for k, v in (raw or {}).items()}


def _invalid_email(email: str) -> str:
    detail = [
        {
            "isValid": False,
            "message": f"Email address {email} is invalid",
            "error": "INVALID_EMAIL",
            "name": "email",
        }
    ]
    return "Property values were not valid: " + json.dumps(detail, separators=(",", ":"))


class CrmApi:
    """List, get, create, update, archive, search and batch endpoints over the stores."""

    def __init__(
        self, stores: dict[str, ObjectStore], clock: Callable[[], float], new_id: Callable[[], int]
    ) -> None:
        self.stores, self.clock, self.new_id = stores, clock, new_id
        self._searches: OrderedDict[tuple[Any, ...], list[Record]] = OrderedDict()

    def dispatch(self, request: httpx.Request) -> httpx.Response:
        """Answer one CRM request; unknown routes are 404, bad input 400."""
        try:
            return self._route(request)
        except ApiError as error:
            return json_response(
                error.status, error_body(error.category, str(error), **error.extra)
            )

    def create(
        self, object_type: str, properties: dict[str, str | None], contact_ids: list[int]
    ) -> Record:
        """Store a new record stamped with the clock's now."""
        record_id, stamp = self.new_id(), iso_ms(self.clock())
        values = {CREATED_PROPERTY[object_type]: stamp} | properties
        values |= {"hs_object_id": str(record_id), MODIFIED_PROPERTY[object_type]: stamp}
        record = Record(record_id, values, values[CREATED_PROPERTY[object_type]] or stamp, stamp)
        record.contact_ids = list(contact_ids)
        self.stores[object_type].add(record)
        return record

    def _route(self, request: httpx.Request) -> httpx.Response:
        match = _PATH.match(request.url.path)
        if match is None or match["type"] not in OBJECT_TYPES:
            raise ApiError(404, "OBJECT_NOT_FOUND", f"No route for {request.url.path}")
        store, rest, method = self.stores[match["type"]], match["rest"], request.method
        routes: dict[tuple[str, str | None], Callable[[ObjectStore, httpx.Request], Any]] = {
            ("GET", None): self._list,
            ("POST", None): self._create,
            ("POST", "search"): self._search,
            ("POST", "batch/read"): self._batch_read,
            ("POST", "batch/upsert"): self._batch_upsert,
            ("POST", "batch/archive"): self._batch_archive,
        }
        if (method, rest) in routes:
            return routes[(method, rest)](store, request)
        if rest and "/" not in rest and method in ("GET", "PATCH", "DELETE"):
            return self._one(store, request, rest)
        raise ApiError(405 if rest in ("search", None) else 404, "VALIDATION_ERROR", "No route")

    @staticmethod
    def _body(request: httpx.Request) -> dict[str, Any]:
        try:
            body = json.loads(request.content or b"{}")
        except ValueError:
            raise ApiError(400, "VALIDATION_ERROR", "Invalid input JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "VALIDATION_ERROR", "The body must be a JSON object")
        return body

    def _list(self, store: ObjectStore, request: httpx.Request) -> httpx.Response:
        params = request.url.params
        limit = _int(params.get("limit"), "limit", 10)
        if not 1 <= limit <= LIST_MAX:
            raise ApiError(400, "VALIDATION_ERROR", f"limit must be between 1 and {LIST_MAX}")
        after = _int(params.get("after"), "after", 0)
        archived = params.get("archived", "false").lower() == "true"
        found, next_id = store.page(after, limit, archived=archived)
        names = split_properties(",".join(params.get_list("properties")))
        linked = "contacts" in ",".join(params.get_list("associations")).split(",")
        results = [record_json(r, store.object_type, names, associations=linked) for r in found]
        body: dict[str, Any] = {"results": results}
        if next_id is not None:
            link = str(request.url.copy_set_param("after", str(next_id)))
            body["paging"] = {"next": {"after": str(next_id), "link": link}}
        return json_response(200, body)

    def _one(self, store: ObjectStore, request: httpx.Request, key: str) -> httpx.Response:
        params = request.url.params
        archived = params.get("archived", "false").lower() == "true"
        if params.get("idProperty") == "email" and not archived:
            record = store.find(key)
        else:
            record = store.get(int(key), archived=archived) if key.isdigit() else None
        if record is None:
            raise ApiError(404, "OBJECT_NOT_FOUND", "Object not found.", context={"id": [key]})
        if request.method == "DELETE":
            store.archive(record, self.clock())
            return httpx.Response(204)
        if request.method == "PATCH":
            properties = _properties(self._body(request).get("properties"))
            self._check_email(store, properties.get("email"))
            store.update(record, properties, self.clock())
        names = split_properties(",".join(params.get_list("properties")))
        linked = "contacts" in params.get("associations", "")
        return json_response(
            200, record_json(record, store.object_type, names, associations=linked)
        )

    def _create(self, store: ObjectStore, request: httpx.Request) -> httpx.Response:
        properties = _properties(self._body(request).get("properties"))
        self._check_email(store, properties.get("email"))
        existing = store.find(properties.get("email") or "") if store.unique_property else None
        if existing is not None:
            message = f"Contact already exists. Existing ID: {existing.id}"
            raise ApiError(409, "CONFLICT", message)
        record = self.create(store.object_type, properties, [])
        return json_response(201, record_json(record, store.object_type, list(properties)))

    @staticmethod
    def _check_email(store: ObjectStore, email: str | None) -> None:
        if store.object_type == CONTACTS and email is not None and not _EMAIL.match(email):
            raise ApiError(400, "VALIDATION_ERROR", _invalid_email(email))

    def _search(self, store: ObjectStore, request: httpx.Request) -> httpx.Response:
        body = self._body(request)
        limit = _int(body.get("limit"), "limit", 10)
        if not 1 <= limit <= SEARCH_MAX:
            raise ApiError(400, "VALIDATION_ERROR", f"limit must be between 1 and {SEARCH_MAX}")
        after = _int(body.get("after"), "after", 0)
        if after >= SEARCH_CAP:
            message = f"Search results are capped at {SEARCH_CAP}; after={after} is beyond them"
            raise ApiError(400, "VALIDATION_ERROR", message)
        matched = self._matches(store, body)
        window = matched[after : min(after + limit, SEARCH_CAP)]
        names = split_properties(body.get("properties"))
        results = [record_json(record, store.object_type, names) for record in window]
        page: dict[str, Any] = {"total": len(matched), "results": results}
        if after + len(window) < len(matched):
            page["paging"] = {"next": {"after": str(after + len(window))}}
        return json_response(200, page)

    def _matches(self, store: ObjectStore, body: dict[str, Any]) -> list[Record]:
        """All matching records, cached while the store is unchanged."""
        question = [body.get("filterGroups"), body.get("sorts"), body.get("query")]
        key = (store.object_type, store.version, json.dumps(question, sort_keys=True, default=str))
        if key not in self._searches:
            try:
                groups = validate_groups(body.get("filterGroups"))
                found = search(store.live(), groups, body.get("sorts"), body.get("query"))
            except SearchError as error:
                raise ApiError(400, "VALIDATION_ERROR", str(error)) from None
            self._searches[key] = found
            while len(self._searches) > 16:
                self._searches.popitem(last=False)
        return self._searches[key]

    @staticmethod
    def _inputs(body: dict[str, Any]) -> list[dict[str, Any]]:
        inputs = body.get("inputs")
        if not isinstance(inputs, list) or not all(isinstance(i, dict) for i in inputs):
            raise ApiError(400, "VALIDATION_ERROR", "inputs must be a list of objects")
        if len(inputs) > BATCH_MAX:
            message = f"Batch input contains {len(inputs)} inputs; the limit is {BATCH_MAX}"
            raise ApiError(400, "VALIDATION_ERROR", message)
        return inputs

    def _batch(
        self, results: list[dict[str, Any]], errors: list[dict[str, Any]], started: str
    ) -> httpx.Response:
        body: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            body |= {"numErrors": len(errors), "errors": errors}
        body |= {"startedAt": started, "completedAt": iso_ms(self.clock())}
        return json_response(207 if errors else 200, body)

    def _batch_read(self, store: ObjectStore, request: httpx.Request) -> httpx.Response:
        body, started = self._body(request), iso_ms(self.clock())
        inputs = self._inputs(body)
        archived = request.url.params.get("archived", "false").lower() == "true"
        names = split_properties(body.get("properties"))
        results, missing = [], []
        for item in inputs:
            key = str(item.get("id", ""))
            if body.get("idProperty") == "email" and not archived:
                record = store.find(key)
            else:
                record = store.get(int(key), archived=archived) if key.isdigit() else None
            if record is None:
                missing.append(key)
            else:
                results.append(record_json(record, store.object_type, names))
        errors = []
        if missing:
            kind = store.object_type.upper().rstrip("S")
            message = f"Could not get some {kind} objects, they may be deleted or not exist."
            errors.append(error_body("OBJECT_NOT_FOUND", message, context={"ids": missing}))
        return self._batch(results, errors, started)

    def _batch_archive(self, store: ObjectStore, request: httpx.Request) -> httpx.Response:
        for item in self._inputs(self._body(request)):
            key = str(item.get("id", ""))
            record = store.get(int(key)) if key.isdigit() else None
            if record is not None:
                store.archive(record, self.clock())
        return httpx.Response(204)

    def _batch_upsert(self, store: ObjectStore, request: httpx.Request) -> httpx.Response:
        started = iso_ms(self.clock())
        inputs = self._inputs(self._body(request))
        keys = [(str(i.get("idProperty") or ""), str(i.get("id", "")).lower()) for i in inputs]
        if len(set(keys)) != len(keys):
            raise ApiError(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")
        results: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for item in inputs:
            outcome = self._upsert_one(store, item)
            (results if "id" in outcome else errors).append(outcome)
        return self._batch(results, errors, started)

    def _upsert_one(self, store: ObjectStore, item: dict[str, Any]) -> dict[str, Any]:
        """The result of one upsert input, or its error body."""
        key, id_property = str(item.get("id", "")), item.get("idProperty") or "hs_object_id"
        properties = _properties(item.get("properties"))
        trace = item.get("objectWriteTraceId")
        context = {"objectWriteTraceId": [str(trace)]} if trace else {"ids": [key]}
        email = properties.get("email") or (key if id_property == "email" else None)
        if store.object_type == CONTACTS and email is not None and not _EMAIL.match(email):
            return error_body("VALIDATION_ERROR", _invalid_email(email), context=context)
        if id_property == "hs_object_id":
            record = store.get(int(key)) if key.isdigit() else None
            if record is None:
                return error_body("OBJECT_NOT_FOUND", "Object not found.", context=context)
        elif id_property == store.unique_property:
            record = store.find(key)
        else:
            live = store.live()
            record = next((r for r in live if r.properties.get(id_property) == key), None)
        if record is None:
            values: dict[str, str | None] = {id_property: key}
            record = self.create(store.object_type, values | properties, [])
            new = True
        else:
            store.update(record, properties, self.clock())
            new = False
        return {"new": new} | record_json(record, store.object_type, list(record.properties))
