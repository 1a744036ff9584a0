// Package server is the blindex index server (`blindex serve`): one process,
// one store, many instances, served as JSON over HTTP with bearer-token
// authentication, limits, Prometheus metrics and structured logs. The same
// API is described as OpenAPI 3 in api/openapi.yaml.
//
//	srv, err := server.Open(ctx, server.Config{Data: dir, AdminTokens: tokens})
//	err = srv.ListenAndServe(ctx, "127.0.0.1:8080") // until ctx ends, then a graceful shutdown
//
// # Many instances
//
// Every instance lives in the one Pebble store of the data directory (keys
// are an instance prefix and a pseudorandom label), so 10,000 instances are
// 10,000 manifests in one database, not 10,000 databases. An instance is
// opened — its root keys unwrapped, its state decrypted into memory — on
// its first request, and at most Config.MaxOpen are open at once (the least
// recently used is closed, its keys zeroed). Each instance has its own keys
// and tokens; nothing is shared between instances.
//
// # Several nodes
//
// With a PostgreSQL store (Config.Store) several servers serve one database,
// every instance on every node: one node at a time owns an instance's
// writes (a lease per instance, fencing every commit), writes reaching
// another node are forwarded to it, and a read on any node sees every
// write acknowledged before it started. See nodes.go and [NodeOptions].
//
// # Authentication
//
// Every endpoint except /healthz and /readyz needs `Authorization: Bearer
// TOKEN`; /metrics needs an administrator token, and /readyz tells the key
// states only to administrators.
//
//   - Administrator tokens come from the configuration (`--admin-token-file`,
//     $BLINDEX_ADMIN_TOKEN); only their SHA-256 is kept in memory, compared
//     in constant time. They may call every endpoint.
//   - Instance tokens are created by an administrator for one instance with
//     scope "read" (get, search, status, list and download attachments) or
//     "write" (read, plus put, delete, bulk, and upload and delete
//     attachments). The token is returned once; the store keeps only its
//     SHA-256 (key 0x00 'T' ‖ hash), bound to that instance's incarnation
//     (its store prefix), checked on every route: deleting the instance
//     revokes its tokens, and a new instance of the same name does not
//     accept them (401), even when the instance was deleted without the
//     server. Instance tokens never administer, not even their own
//     instance.
//   - Isolation: a token for instance A gets 404 not_found on every endpoint
//     of any other instance B — byte for byte the answer an instance that
//     does not exist gets — whatever its scope, so it cannot learn which
//     instances exist. On its own instance, an endpoint its scope does not
//     allow gets 403 forbidden.
//   - Without any administrator token configured, the server serves only
//     loopback addresses (Serve and ListenAndServe refuse others, before
//     opening a socket), logs a warning at start, and a request without a
//     token has administrator rights. A token it does not know is still 401.
//     So that no web page the user visits can act as that administrator,
//     loopback mode refuses a Host that is not a loopback name (421
//     host_not_allowed: DNS rebinding), an Origin other than the server's
//     own and a cross-site Sec-Fetch-Site (403 origin_not_allowed), and a
//     body without its route's Content-Type — application/json;
//     application/x-ndjson or application/json for bulk; for an attachment
//     its own type, not text/plain, a form type or none; for a body-less
//     POST or DELETE, no form type — 415 unsupported_media_type.
//   - Serving a non-loopback address over plain HTTP logs a warning at
//     start.
//
// # Endpoints
//
// Health (no token) and metrics (administrator):
//
//	GET    /healthz                            200 {"status":"ok"} while the process runs
//	GET    /readyz                             200 {"status":"ready"} (and "kms":{...} for administrators); 503 not_ready when shutting down, the store fails, or its disk is full or failed a write
//	GET    /metrics                            Prometheus text format (administrator token once tokens are configured)
//
// /readyz is blindex's own readiness. The key provider (KMS, a third party)
// is reported beside it, to administrators, in "kms": {"state": "ok"|"degraded"|"unknown",
// "configurations": {"ok": n, "degraded": n, "locked": n}}, and a degraded,
// revoked or hanging KMS does not make the server unready: other instances
// keep serving. ("unknown": a provider call held the key status for more
// than a second; the answer does not wait for it.)
//
// Encryption configurations (administrator):
//
//	POST   /v1/configs                         {"org","key_arn","region"} → 201; a second one for an org → 409 policy_refused
//	GET    /v1/configs                         {"configs":[...]}, each with its instance count and key status
//	GET    /v1/configs/{org}
//
// Organisation plans and the BYOK availability policy (administrator; see
// package policy). A configuration needs a plan that offers BYOK; a BYOK
// instance needs the policy's consent for its product and plan (409
// policy_refused saying what is missing); an unknown product is 400:
//
//	PUT    /v1/orgs/{org}                      {"plan":"enterprise"} → 200 {"org","plan","byok","updated"}
//	GET    /v1/orgs                            {"orgs":[...]}
//	GET    /v1/orgs/{org}
//	GET    /v1/policy                          the policy in effect, in the policy file's format
//
// Instances (administrator; status also with any token of that instance):
//
//	POST   /v1/instances                       {"name","org","site","product","region","byok","mapping","strict_mapping"} → 201
//	GET    /v1/instances?limit=100&after=NAME  {"instances":[...],"total":n,"next":"NAME"} (pages of at most 1000)
//	GET    /v1/instances/{name}                metadata, SLA ("covered", or "excluded" for BYOK in early access), key generations, status, document count and mapping when unlocked
//	GET    /v1/instances/{name}/status         {"state":"ok"|"degraded"|"locked","reason":"..."}
//	DELETE /v1/instances/{name}                crypto-shred: wrapped keys and shredding secret destroyed, records deleted, tokens revoked
//	POST   /v1/instances/{name}/revoke-now     lock at once, until restore (across requests, key checks, servers sharing the store and restarts): a BYOK instance's whole configuration, else this instance alone
//	POST   /v1/instances/{name}/restore        lift this instance's revoke-now lock, re-validate with the provider now and unlock; 423 if it still refuses
//	POST   /v1/instances/{name}/rotate         new key generation: {"current_generation":g,...}
//	POST   /v1/instances/{name}/reencrypt      start the online re-encryption → 202 with its progress; 409 conflict if running
//	GET    /v1/instances/{name}/reencrypt      progress: {"state","done","total","percent","generations",...}
//	POST   /v1/instances/{name}/enable-byok    always 409 byok_immutable: BYOK is chosen at creation
//	POST   /v1/instances/{name}/tokens         {"scope":"read"|"write"} → 201 {"id","token",...} (the token, once)
//	GET    /v1/instances/{name}/tokens         ids, scopes and creation times; never the tokens
//	DELETE /v1/instances/{name}/tokens/{id}
//
// Status: "ok"; "degraded" (the key provider cannot be reached and keys serve
// from memory until their lease runs out, or some keys of the configuration
// are locked); "locked" (the key is revoked — by the customer in KMS or by
// revoke-now — or a lease ran out without re-validation). "reason" says which.
// Status is per configuration: revoking a customer's key locks all of its
// instances and nobody else's.
//
// Re-encryption state: "idle" (none since the server started), "running",
// "completed" (every record is under the current generation and older
// generations' wrapped keys are destroyed), "failed" (with "error"; POST
// again to resume), "interrupted" (by shutdown or deletion; POST again to
// resume). Searches and writes continue during it with unchanged results.
//
// Documents and search (instance tokens, or administrator):
//
//	PUT    /v1/instances/{name}/documents/{id} the body is the document (a JSON object) → 200 {"_id","result":"indexed"}; replaces
//	GET    /v1/instances/{name}/documents/{id} the stored document, as it was PUT
//	DELETE /v1/instances/{name}/documents/{id} 200 {"result":"deleted"}, or 404
//	POST   /v1/instances/{name}/bulk           NDJSON, see below
//	POST   /v1/instances/{name}/search         a bleve search request → bleve's search result JSON
//	POST   /v1/search                          {"instances": [...], "request": {...}}: several instances of
//	                                           one organisation searched as one (bleve's IndexAlias);
//	                                           administrators only; a locked instance fails it (423)
//
// A document id is 1 to 512 bytes of UTF-8, URL-escaped in the path (in a
// bulk action, a JSON string: bytes that are not UTF-8 and unpaired
// surrogate escapes are refused, never replaced by U+FFFD). A write is
// visible to searches, and durable, when its answer is sent.
//
// Attachments of a document (instance tokens, or administrator):
//
//	POST   /v1/instances/{name}/documents/{id}/attachments            the body is the file → 201 its description (write scope)
//	GET    /v1/instances/{name}/documents/{id}/attachments            {"attachments":[...]}, oldest first (read scope; also while locked)
//	GET    /v1/instances/{name}/documents/{id}/attachments/{aid}      the contents (read scope; 423 while locked)
//	GET    /v1/instances/{name}/documents/{id}/attachments/{aid}/meta its description (read scope; also while locked)
//	DELETE /v1/instances/{name}/documents/{id}/attachments/{aid}      204 (write scope)
//
// An upload's body is the file's bytes, as they are (`curl --data-binary
// @FILE` or `curl -T FILE -X POST`; a multipart form is refused with 400
// invalid_request). It is streamed into the store in sealed 64 KiB chunks
// as it arrives, never held in memory whole, and becomes visible — listed,
// readable, its text searchable — only when it is complete: an upload that
// fails or goes over the size limit leaves nothing. The document must
// exist (404 otherwise). Its name is `?name=`, else the filename of a
// Content-Disposition header (without any directory part); its content
// type is the Content-Type header, else (also for curl's default
// application/x-www-form-urlencoded) guessed from the name's extension and
// the first bytes; its uploader is "token:" and the instance token's id, or
// "admin". A description is {"id","name","content_type","size","created",
// "uploader","chunks","indexed","text_truncated"}; an attachment id is 26
// characters of base32 (a-z, 2-7).
//
// The text of text/*, JSON, XML and log attachments (its first MiB of
// UTF-8) is indexed into the document's field attachments.content (in _all
// under dynamic mappings), so a search finds the document by its
// attachments' text; "indexed" says whether it was. Binary content is
// stored, not indexed ("indexed": false). Deleting an attachment removes
// its text from the index in the same commit; deleting a document deletes
// its attachments.
//
// A download answers the contents with the Content-Type and Content-Length
// of the description, Content-Disposition: attachment with its name,
// X-Content-Type-Options: nosniff and a sandboxing Content-Security-Policy
// (no ranges). Each chunk is authenticated before it is sent; a failure
// after the answer started (the instance locked midway, a damaged chunk)
// closes the connection, so the client sees a short transfer, never a
// short file. HEAD answers the headers alone.
//
// Attachment metadata (names, sizes, types, uploaders, dates) is sealed
// under the instance's metadata key, wrapped by the server's local key
// provider and not by the instance's BYOK key, by design: while the
// instance is locked, list and meta still answer (read with the metadata
// key alone when the instance cannot be opened), and download, upload and
// delete answer 423 instance_locked. A document without attachments, or
// that does not exist, lists none (metadata cannot tell them apart).
//
// Bulk requests are NDJSON: `{"index":{"_id":"ID"}}` followed by the
// document on the next line, or `{"delete":{"_id":"ID"}}`. Every item is
// validated first (framing, id, JSON, size); if any item is invalid, the
// answer is 400 with one result per item in order — the items at fault
// carry their own status and error, every other item has status 424 and
// result "not_applied" — and nothing is written. The actions are then
// applied in order as consecutive ATOMIC BATCHES of at most
// Limits.MaxBatchBytes of documents (default 4 MiB, at least one document
// each; a bulk within it is one atomic batch), so that the memory a request
// takes is bounded by its body and one batch, not by the whole bulk. If a
// batch fails — the mapping cannot index a document (400), the instance is
// locked (423), the request times out (504) — it and every later batch are
// not applied: items of earlier batches have status 200, the item at fault
// its error, and the others 424 "not_applied" (carrying the cause when it
// is not an item's). On success the answer is 200 {"took":ms,"errors":false,"items":
// [{"index":{"_id","status":200,"result":"indexed"}}, {"delete":{...,
// "result":"deleted"}}]}. A line that cannot be framed (not an action, an
// index action without its document) refuses the whole request with 400
// invalid_json. When an id appears twice, its last action wins.
//
// Search requests are bleve's SearchRequest JSON: "query" is a query-string
// query ({"query":"summary:crash -status:closed"}) or any query of bleve's
// JSON DSL (match, term, phrase, prefix, wildcard, regexp, fuzzy, numeric and
// date ranges, conjuncts/disjuncts, bool must/should/must_not); with size,
// from, sort, fields, facets, highlight, explain, search_after and
// search_before. The answer is bleve's SearchResult JSON (status, hits with
// id, score, fields, fragments; total_hits; facets; took). Without "sort",
// hits are ordered by score then id, so that ties are reproducible.
// pre_search_data, params and knn are refused, and so are negative size or
// from (bleve would quietly use 10 and 0), sort items that name no field, a
// reserved one (starting with '_', other than _score and _id) or have two
// signs, and JSON nested deeper than 4×MaxQueryDepth+8 levels (checked
// before any parsing). Stored fields ("fields") are not loaded by the
// search: the answer streams, loading them 8 hits at a time, so a
// search's memory does not grow with size × document size.
// blindex adds "dialect":
// "boolean" reads a query-string query with AND, OR, NOT and parentheses
// (package query); "bleve", the default, is bleve's syntax.
//
// # Errors
//
// Every error answer is
//
//	{"error": {"code": "instance_locked", "message": "... what happened, and what to do next"}}
//
// with one of these codes:
//
//	400 invalid_json           the body is not valid JSON or NDJSON
//	400 invalid_request        a field is missing, unknown or of the wrong type
//	400 invalid_argument       a bad instance name, document id, attachment id or name, scope or limit parameter
//	400 invalid_mapping        the index mapping is not supported
//	400 invalid_document       the document is not a JSON object, or the mapping cannot index it
//	400 invalid_query          the query does not parse or cannot run
//	400 query_too_long         over the query length limit
//	400 query_too_complex      over the clause, nesting, expensive-clause or term-expansion limit
//	400 query_too_expensive    its expansion examined more term dictionary entries than the expansion limit
//	401 unauthenticated        no token, a malformed header, or an unknown or revoked token
//	403 forbidden              the token's scope does not allow this endpoint
//	404 not_found              no such instance (or not this token's), document, attachment, configuration, token or endpoint
//	405 method_not_allowed     the path exists with other methods (see Allow)
//	409 already_exists         an instance of that name exists
//	409 policy_refused         refused by the BYOK rules (second configuration, region, product family)
//	409 byok_immutable         BYOK cannot be turned on or off after creation
//	409 conflict               a re-encryption is running
//	413 body_too_large         over the body size limit
//	413 document_too_large     over the document size limit
//	413 too_many_items         over the bulk item limit
//	413 attachment_too_large   over the attachment size limit; nothing of the upload was stored
//	415 unsupported_media_type loopback mode: the body's Content-Type is not the route's
//	421 host_not_allowed       loopback mode: the Host is not a loopback name
//	403 origin_not_allowed     loopback mode: sent by a web page of another origin
//	429 too_many_requests      the token has too many requests or writes in flight (Retry-After)
//	423 instance_locked        the instance's key is revoked in the provider, or revoke-now holds it until restore; nothing was read or written
//	500 data_corrupt           a stored record failed authentication (run `blindex check`)
//	500 internal               a bug; the details are in the server's log
//	503 kms_unavailable        the key provider cannot be reached (an outage, not a revocation), whether or not the key was in memory (Retry-After: the keyring's backoff)
//	503 storage_failed         the disk failed a write: not applied; writes refused until the server restarts; reads work (Retry-After)
//	503 store_unavailable      the database (--store) cannot be reached: an outage; the server recovers by itself when it returns (Retry-After)
//	503 owner_unavailable      several nodes: another node owns the instance's writes and cannot be reached, or took them over during the request; nothing written (Retry-After: until its ownership passes)
//	503 overloaded             too many requests in flight (Retry-After)
//	503 shutting_down          the server is stopping
//	504 timeout                over the request time limit; a write that was stopped was not applied
//	507 storage_full           the disk holding the data is full (below the store's reserve): nothing written; writes resume by themselves once space is freed (Retry-After)
//	                           (408 when the body itself did not arrive in time)
//
// A locked instance always answers 423 instance_locked, never a 500:
// revocation is a customer's decision, not a server failure. Status and
// metadata (GET /v1/instances/{name}, .../status) still answer, since
// manifests need no key, and so do attachment lists and descriptions.
//
// # Limits
//
// See [Limits] for defaults. Body size (413 body_too_large; checked against
// Content-Length first, then while reading), document size (413
// document_too_large, for PUT and for each bulk document), bulk item count
// (413 too_many_items), attachment size (413 attachment_too_large, default
// 100 MiB: checked against Content-Length first, then while streaming; an
// upload and a download must each finish within the request timeout), query length (400 query_too_long: the query string's
// text and the query's JSON), query complexity (400 query_too_complex: the
// clauses of the parsed query — query strings are parsed with bleve's own
// parser first —, its nesting depth, its wildcard/regexp/prefix/fuzzy/range
// clauses, and the total number of terms those expand to, enforced by bleve
// during the search), query expansion work (400 query_too_expensive: the
// term dictionary entries a search's expansions examine, counted as they
// go; the expansion also stops, within a few hundred entries, when the
// request's time runs out), facets (400 invalid_request), the result window
// (from+size ≤ 10,000), the per-request timeout (504 timeout) and requests
// in flight (503 overloaded), requests and writes in flight per token (429
// too_many_requests), document bytes per bulk batch and document bytes
// analysed at once across the server (a write waits for room within its
// timeout).
//
// # Metrics
//
// Labels are route templates, methods, status and error codes, provider
// kinds, operations, outcomes and states — never instance names, paths,
// document ids or organisations:
//
//	blindex_http_requests_total{route,method,code}
//	blindex_http_request_duration_seconds{route,method}        histogram
//	blindex_http_rejected_total{code}                          refused before the engine (auth, limits, overload)
//	blindex_instance_locked_answers_total
//	blindex_requests_in_flight
//	blindex_documents_written_total{op="index"|"delete"}
//	blindex_documents                                          live documents of the instances written since start
//	blindex_forwarded_writes_total{outcome}                    several nodes: writes forwarded to the instance's owner (answered, owner_unreachable)
//	blindex_key_provider_calls_total{provider="aws-kms"|"local",operation,outcome}
//	blindex_key_provider_call_duration_seconds{provider,operation}
//	blindex_lease_revalidations_total{provider,outcome}        background re-validations; outcome="ok" is a lease refresh
//	blindex_instances{state="ok"|"degraded"|"locked"}
//	blindex_key_configurations{provider,state}
//	blindex_reencrypt_jobs_running, blindex_reencrypted_records_total
//	blindex_instances_by_sla{sla="covered"|"excluded"}         the SLA boundary under the policy in effect
//	blindex_request_faults_total{source="key_provider"|"blindex",sla="covered"|"excluded"|"none"}
//	                                                           5xx answers: the key provider could not be reached (an
//	                                                           outage the SLA excludes) or blindex's own failure
//	go_*, process_*
//
// # Logs
//
// Logs are slog records (JSON in `blindex serve`): one line per request at
// debug level (method, route template, status, duration, size, error code),
// failures at warn and error, administrative events (instance created,
// deleted, revoked, restored, rotated, token created) at info with the
// instance name. No line ever holds document content, a document id, a query
// or its terms, an attachment's id, name, type, uploader or contents, a token
// or key material. A download cut after its answer started is logged with
// its error code and "aborted": true.
//
// # Shutdown
//
// [Server.Shutdown] (SIGINT or SIGTERM in `blindex serve`) stops accepting
// connections, lets in-flight requests finish (a write commits whole or not
// at all), stops running re-encryptions between two batches (they resume
// when started again), then closes the catalog, which zeroes every key, and
// the store.
package server
