//! The OpenAPI 3.0.3 document served at `GET /api/v1/openapi.json`, built in code. Its `paths`
//! are exactly the route table ([`super::routes::ROUTES`]); a test holds them equal.

use super::api::{
    DEFAULT_LIST_LIMIT, DEFAULT_PRIORITY, MAX_CHANNEL_LEN, MAX_CURSOR_LEN, MAX_FILTER_UIDS,
    MAX_LIST_LIMIT, MAX_PRIORITY, MAX_TTL_SECONDS,
};
use super::query::MAX_PATTERN_LEN;
use super::routes::{Route, MAX_PARAM_LEN, ROUTES};
use crate::protocol::channel::BackendKind;
use crate::protocol::payloads::MAX_AGENT_ID_LEN;
use serde_json::{json, Map, Value};

/// The whole document.
pub fn document() -> Value {
    let mut paths = Map::new();
    for spec in &ROUTES {
        let entry = paths
            .entry(spec.path)
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(methods) = entry {
            let mut op = operation(spec.route);
            // Beyond the connection caps only health probes are answered.
            if !matches!(spec.route, Route::Healthz | Route::Readyz) {
                for status in ["429", "503"] {
                    op["responses"][status] = json!({"$ref": "#/components/responses/Error"});
                }
            }
            methods.insert(spec.method.as_str().to_ascii_lowercase(), op);
        }
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Aegis Gateway admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Operate the Aegis agent fleet: agent status, commands (send, broadcast), \
                delivery status, revocation and the event stream. Times are RFC 3339 UTC. Every \
                error body is {\"error\": code, \"message\": text}. Storage errors: 507 \
                insufficient_storage when the data directory is full or below STORE_MIN_FREE, \
                503 storage_unavailable while the store recovers from another failure; in both \
                cases nothing was queued (a command is answered queued or sent only once it is \
                on disk), and the gateway accepts commands again by itself once it can write. \
                Connections are capped in all and per client IP: beyond the caps every route \
                but /healthz and /readyz answers 429 too_many_connections (this address) or \
                503 unavailable (the listener)."
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "Error",
                    "content": {"application/json": {"schema": schema_ref("Error")}}
                }
            },
            "schemas": schemas()
        }
    })
}

fn schema_ref(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

fn json_body(schema: &str) -> Value {
    json!({"application/json": {"schema": schema_ref(schema)}})
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "path", "required": true, "description": description,
           "schema": schema})
}

/// An agent uid or host id, as `payloads::is_agent_id` (and so the path's `{id}`) accepts it.
pub fn agent_id_pattern() -> String {
    format!("^[A-Za-z0-9._@-]{{1,{MAX_AGENT_ID_LEN}}}$")
}

/// `backend.{kind}`, or `backend.{id}.{kind}` when `with_id`, as `channel::parse` accepts it.
pub fn channel_pattern(with_id: bool) -> String {
    let kinds: Vec<&str> = BackendKind::ALL.iter().map(|k| k.as_str()).collect();
    let id = if with_id {
        format!("([A-Za-z0-9._@-]{{1,{MAX_AGENT_ID_LEN}}}\\.)?")
    } else {
        String::new()
    };
    format!("^backend\\.{id}({})$", kinds.join("|"))
}

fn query_param(name: &str, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "query", "required": false, "description": description, "schema": schema})
}

/// One operation: summary, parameters, request body schema, 200 content, error statuses.
fn op(
    id: &str,
    summary: &str,
    params: Vec<Value>,
    body: Option<&str>,
    ok: Value,
    errors: &[&str],
    auth: bool,
) -> Value {
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    for status in errors.iter().chain(if auth { &["401"][..] } else { &[] }) {
        responses.insert(
            (*status).into(),
            json!({"$ref": "#/components/responses/Error"}),
        );
    }
    let mut o = json!({"operationId": id, "summary": summary, "responses": responses});
    if !params.is_empty() {
        o["parameters"] = Value::Array(params);
    }
    if let Some(schema) = body {
        o["requestBody"] = json!({"required": true, "content": json_body(schema)});
    }
    o["security"] = if auth {
        json!([{"bearerAuth": []}])
    } else {
        json!([])
    };
    o
}

fn ok_json(schema: &str) -> Value {
    json!({"description": "OK", "content": json_body(schema)})
}

fn operation(route: Route) -> Value {
    let agent_schema = json!({"type": "string", "minLength": 1, "maxLength": MAX_AGENT_ID_LEN,
            "pattern": agent_id_pattern()});
    let agent = || {
        path_param(
            "id",
            "agent_uid, or a host_id held by exactly one active agent",
            agent_schema.clone(),
        )
    };
    match route {
        Route::AgentStatus => op(
            "getAgentStatus",
            "Status of one agent",
            vec![agent()],
            None,
            ok_json("AgentStatus"),
            &["400", "404", "409", "503"],
            true,
        ),
        Route::ListAgents => op(
            "listAgents",
            "Page through agents",
            vec![
                query_param(
                    "connected",
                    "only connected (true) or disconnected (false) agents",
                    json!({"type": "boolean"}),
                ),
                query_param(
                    "limit",
                    "page size",
                    json!({"type": "integer", "minimum": 1,
                    "maximum": MAX_LIST_LIMIT, "default": DEFAULT_LIST_LIMIT}),
                ),
                query_param(
                    "cursor",
                    "next_cursor of the previous page",
                    json!({"type": "string", "maxLength": MAX_CURSOR_LEN}),
                ),
            ],
            None,
            ok_json("AgentPage"),
            &["400", "503"],
            true,
        ),
        Route::Send => op(
            "sendToAgent",
            "Send a command to one agent",
            vec![agent()],
            Some("SendRequest"),
            ok_json("SendResponse"),
            &["400", "404", "409", "413", "429", "503", "507"],
            true,
        ),
        Route::Broadcast => op(
            "broadcast",
            "Send a command to many agents",
            vec![],
            Some("BroadcastRequest"),
            ok_json("BroadcastResponse"),
            &["400", "413", "503", "507"],
            true,
        ),
        Route::MessageStatus => op(
            "getMessageStatus",
            "Delivery status and retries of a message",
            vec![path_param(
                "message_id",
                "id returned by send or broadcast",
                json!({"type": "string", "minLength": 1, "maxLength": MAX_PARAM_LEN}),
            )],
            None,
            ok_json("MessageStatusResponse"),
            &["400", "404", "503"],
            true,
        ),
        Route::Revoke => op(
            "revokeAgent",
            "Forget an agent's registration and close its connection (an agent whose id is \
                \"broadcast\" is revoked by uid: that path is the broadcast route)",
            vec![path_param(
                "id",
                "agent_uid, or a host_id held by exactly one active agent",
                json!({"allOf": [agent_schema, {"not": {"enum": ["broadcast"]}}]}),
            )],
            None,
            ok_json("RevokeResponse"),
            &["400", "404", "405", "409", "503", "507"],
            true,
        ),
        Route::Events => op(
            "streamEvents",
            "Server-Sent Events of verified agent messages",
            vec![
                query_param(
                    "channel",
                    "channel pattern: `*` one segment, `>` the rest (all channels when absent)",
                    json!({"type": "string", "maxLength": MAX_PATTERN_LEN,
                        "pattern": "^[A-Za-z0-9._@*>-]*$"}),
                ),
                query_param(
                    "last_event_id",
                    "resume after this seq (the Last-Event-ID header wins)",
                    json!({"type": "integer", "minimum": 0, "maximum": u64::MAX}),
                ),
                json!({"name": "Last-Event-ID", "in": "header", "required": false,
                    "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX}}),
            ],
            None,
            json!({"description": "text/event-stream: `id: {seq}`, `event: {message_type}`, \
                `data: {EventItem}`; `: keepalive` comments while idle. A client that stops \
                reading is dropped after `event: end` with data \
                {\"error\": \"slow_consumer\", \"message\", \"last_event_id\"}: resume with \
                Last-Event-ID.",
                "content": {"text/event-stream": {"schema": {"type": "string"}}}}),
            &["400"],
            true,
        ),
        Route::OpenApi => op(
            "getOpenApi",
            "This document",
            vec![],
            None,
            json!({"description": "OK", "content": {"application/json": {"schema": {"type": "object"}}}}),
            &[],
            true,
        ),
        Route::Metrics => op(
            "getMetrics",
            "Prometheus metrics",
            vec![],
            None,
            json!({"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}),
            &[],
            false,
        ),
        Route::Healthz => op(
            "getHealth",
            "Liveness",
            vec![],
            None,
            ok_json("Status"),
            &[],
            false,
        ),
        Route::Readyz => op(
            "getReady",
            "Readiness (503 while draining)",
            vec![],
            None,
            ok_json("Status"),
            &["503"],
            false,
        ),
    }
}

fn schemas() -> Value {
    let string = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    let nullable_time = json!({"type": "string", "format": "date-time", "nullable": true});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let message_type =
        json!({"type": "string", "enum": ["request", "event"], "default": "request"});
    let command = json!({"description": "the command: any JSON value except null",
        "anyOf": [{"type": "object"}, {"type": "array", "items": {}}, {"type": "string"},
            {"type": "number"}, {"type": "boolean"}]});
    json!({
        "Error": {"type": "object", "required": ["error", "message"], "properties": {
            "error": string, "message": string,
            "agent_uids": {"type": "array", "items": {"type": "string"},
                "description": "with 409 ambiguous_host_id"}}},
        "Status": {"type": "object", "required": ["status"], "properties": {"status": string}},
        "AgentStatus": {"type": "object", "required": ["agent_id", "host_id", "connected",
                "last_seen", "channels", "session_expires", "protocol", "queue_depth"],
            "properties": {
                "agent_id": string, "host_id": string, "connected": {"type": "boolean"},
                "last_seen": time, "channels": strings, "session_expires": nullable_time,
                "protocol": {"type": "string", "enum": ["v1", "v2"], "nullable": true},
                "queue_depth": {"type": "integer", "minimum": 0}}},
        "AgentPage": {"type": "object", "required": ["agents", "next_cursor"], "properties": {
            "agents": {"type": "array", "items": schema_ref("AgentStatus")},
            "next_cursor": {"type": "string", "nullable": true}}},
        "SendRequest": {"type": "object", "required": ["channel", "message"],
            "additionalProperties": false, "properties": {
                "channel": {"type": "string", "maxLength": MAX_CHANNEL_LEN,
                    "pattern": channel_pattern(true),
                    "description": "backend.{kind} or backend.{id}.{kind} ({id}: the path's agent)"},
                "message": command, "message_type": message_type,
                "priority": {"type": "integer", "minimum": 0, "maximum": MAX_PRIORITY,
                    "default": DEFAULT_PRIORITY},
                "ttl_seconds": {"type": "integer", "minimum": 1, "maximum": MAX_TTL_SECONDS}}},
        "SendResponse": {"type": "object", "required": ["message_id", "status"], "properties": {
            "message_id": string,
            "status": {"type": "string", "enum": ["sent", "queued", "failed"]},
            "error": string}},
        "AgentFilter": {"type": "object", "additionalProperties": false, "properties": {
            "agent_uids": {"type": "array", "items": {"type": "string"}, "maxItems": MAX_FILTER_UIDS},
            "os": string, "arch": string, "agent_version": string}},
        "BroadcastRequest": {"type": "object", "required": ["channel", "message"],
            "additionalProperties": false, "properties": {
                "channel": {"type": "string", "pattern": channel_pattern(false),
                    "description": "backend.{kind}"},
                "message": command, "message_type": message_type,
                "agent_filter": schema_ref("AgentFilter"),
                "include_offline": {"type": "boolean", "default": false}}},
        "BroadcastFailure": {"type": "object", "required": ["agent_uid", "error"],
            "properties": {"agent_uid": string, "error": string}},
        "BroadcastResponse": {"type": "object",
            "required": ["message_id", "sent_to", "queued", "failed", "counts"], "properties": {
                "message_id": string, "sent_to": strings, "queued": strings,
                "failed": {"type": "array", "items": schema_ref("BroadcastFailure")},
                "counts": {"type": "object", "required": ["sent", "queued", "failed"], "properties": {
                    "sent": {"type": "integer"}, "queued": {"type": "integer"},
                    "failed": {"type": "integer"}}}}},
        "Delivery": {"type": "object", "required": ["agent_uid", "status", "retry_count",
                "max_retries", "attempts", "created_at", "expires_at", "updated_at"],
            "properties": {
                "agent_uid": string, "status": string,
                "retry_count": {"type": "integer", "minimum": 0},
                "max_retries": {"type": "integer", "minimum": 0},
                "attempts": {"type": "array", "items": time},
                "created_at": time, "expires_at": time, "updated_at": time, "error": string}},
        "MessageStatusResponse": {"type": "object", "required": ["message_id", "deliveries"],
            "properties": {"message_id": string,
                "deliveries": {"type": "array", "items": schema_ref("Delivery")}}},
        "RevokeResponse": {"type": "object", "required": ["agent_uid", "revoked", "disconnected"],
            "properties": {"agent_uid": string, "revoked": {"type": "boolean"},
                "disconnected": {"type": "boolean"}}},
        "EventItem": {"type": "object",
            "required": ["seq", "channel", "agent_uid", "message_type", "id", "body", "at"],
            "properties": {"seq": {"type": "integer", "minimum": 1}, "channel": string,
                "agent_uid": string, "message_type": string, "id": string,
                "body": {"description": "decrypted payload"}, "at": time}}
    })
}
