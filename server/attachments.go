package server

// Attachments: files attached to a document, streamed in and out.
//
//	POST   /v1/instances/{name}/documents/{id}/attachments            upload (write scope) → 201 attach.Info
//	GET    /v1/instances/{name}/documents/{id}/attachments            list (read scope; also while locked)
//	GET    /v1/instances/{name}/documents/{id}/attachments/{aid}      the contents (read scope; 423 while locked)
//	GET    /v1/instances/{name}/documents/{id}/attachments/{aid}/meta the attach.Info (read scope; also while locked)
//	DELETE /v1/instances/{name}/documents/{id}/attachments/{aid}      204 (write scope)
//
// The upload body is the raw content, read by the handler as it arrives
// (route body kind bodyStream) and streamed straight into
// index.Instance.AddAttachment, which seals it chunk by chunk: the server
// never holds more than a chunk batch of it. Limits.MaxAttachmentBytes is
// checked against Content-Length before anything is read, then while
// reading; over it the upload is abandoned and the library deletes what it
// wrote, so nothing becomes visible.
//
// Metadata (names, sizes, types, uploaders, dates) is sealed under the
// instance's metadata key, outside BYOK: listing and meta answer while the
// instance is locked, through tenancy.Catalog.ListAttachments when the
// instance cannot be opened. Contents need the instance's key: downloads
// (and uploads and deletions) answer 423 instance_locked.
//
// Logs and metrics carry the route template only: never document ids,
// attachment ids or names, content types, uploaders or contents.

import (
	"bytes"
	"encoding/base32"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/blindex/blindex/attach"
	"github.com/blindex/blindex/index"
	"github.com/blindex/blindex/keys"
)

// CodeAttachmentTooLarge is the error code of an upload over
// Limits.MaxAttachmentBytes (413).
const CodeAttachmentTooLarge = "attachment_too_large"

// DefaultMaxAttachmentBytes is the default of Limits.MaxAttachmentBytes.
const DefaultMaxAttachmentBytes = 100 << 20

// attachIDEncoding and attachIDBytes mirror the index package's attachment
// ids (16 random bytes, unpadded base32, lower case), so that a malformed
// id is 400 invalid_argument on every path, including the ones that do not
// reach the library (listing through the catalog while locked).
var attachIDEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

const attachIDBytes = 16

func checkAttachID(aid string) *apiError {
	b, err := attachIDEncoding.DecodeString(strings.ToUpper(aid))
	if err != nil || len(b) != attachIDBytes {
		return newErr(http.StatusBadRequest, CodeInvalidArgument, "an attachment id is the 26-character id an upload returned (letters a-z and digits 2-7)")
	}
	return nil
}

// attachmentPath returns the {id} and, when the route has one, {aid} path
// values, validated.
func attachmentPath(c *call, withAID bool) (docID, aid string, e *apiError) {
	docID = c.r.PathValue("id")
	if e := checkID(docID); e != nil {
		return "", "", e
	}
	if withAID {
		aid = c.r.PathValue("aid")
		if e := checkAttachID(aid); e != nil {
			return "", "", e
		}
	}
	return docID, aid, nil
}

// attachmentError gives the library's not-found errors the server's
// wording. missing is the message of a plain not-found (no such document
// for an upload, no such attachment otherwise); answers that are already
// the server's (an instance the token may not see) are unchanged.
func attachmentError(err error, missing string) error {
	var ae *apiError
	switch {
	case err == nil, errors.As(err, &ae):
		return err
	case errors.Is(err, index.ErrAttachmentGone):
		return newErr(http.StatusNotFound, CodeNotFound, "the attachment or its document was deleted while this request ran")
	case errors.Is(err, index.ErrNotFound):
		return newErr(http.StatusNotFound, CodeNotFound, "%s", missing)
	}
	return err
}

const (
	msgNoDocument   = "this instance has no document with that id; PUT the document before attaching files to it"
	msgNoAttachment = "this document has no attachment with that id"
)

// uploadBody is the upload's body as the library reads it: within the size
// limit, counting what was read and remembering why reading stopped, so
// that a failed upload is answered for the body's fault (413, 408, 400)
// rather than the engine's.
type uploadBody struct {
	r   io.Reader
	n   int64
	err error // the last error other than io.EOF
}

func (b *uploadBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

func (s *Server) attachmentTooLarge() *apiError {
	return newErr(http.StatusRequestEntityTooLarge, CodeAttachmentTooLarge,
		"the attachment is larger than the server's limit of %d bytes (Limits.MaxAttachmentBytes); nothing was stored", s.lim.MaxAttachmentBytes)
}

// bodyError is the answer for an upload whose body could not be read.
func (s *Server) bodyError(err error) *apiError {
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return s.attachmentTooLarge()
	case errors.Is(err, os.ErrDeadlineExceeded):
		return newErr(http.StatusRequestTimeout, CodeTimeout, "the attachment did not arrive within the server's time limit of %v; nothing was stored. Send it faster, or ask for a longer limit", s.lim.RequestTimeout)
	}
	return newErr(http.StatusBadRequest, CodeInvalidRequest, "the request body could not be read completely; nothing was stored")
}

// uploadMeta reads the attachment's name, content type and uploader from
// the request.
func uploadMeta(c *call) (attach.Meta, *apiError) {
	var m attach.Meta
	q, err := url.ParseQuery(c.r.URL.RawQuery)
	if err != nil {
		return m, newErr(http.StatusBadRequest, CodeInvalidArgument, "the query string is not valid URL encoding")
	}
	switch names := q["name"]; {
	case len(names) > 1:
		return m, newErr(http.StatusBadRequest, CodeInvalidArgument, "give the attachment's name once (?name=)")
	case len(names) == 1:
		m.Name = names[0]
	default:
		if cd := c.r.Header.Get("Content-Disposition"); cd != "" {
			_, params, err := mime.ParseMediaType(cd)
			if err != nil {
				return m, newErr(http.StatusBadRequest, CodeInvalidArgument, "the Content-Disposition header does not parse; send e.g. `attachment; filename=\"report.txt\"`, or the name as ?name=")
			}
			// RFC 6266 §4.3: a file name is a name, not a path.
			fn := params["filename"]
			m.Name = fn[strings.LastIndexAny(fn, `/\`)+1:]
		}
	}
	if ct := c.r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err != nil:
			return m, newErr(http.StatusBadRequest, CodeInvalidArgument, "the Content-Type header is not a media type")
		case mt == "multipart/form-data":
			return m, newErr(http.StatusBadRequest, CodeInvalidRequest, "send the file's bytes as the request body (e.g. `curl --data-binary @FILE` or `curl -T FILE -X POST`), not a multipart form")
		case mt == "application/x-www-form-urlencoded":
			// curl's default for --data-binary, not a statement about the
			// file: let the library guess from the name and the content.
		default:
			m.ContentType = ct
		}
	}
	switch {
	case c.p.admin:
		m.Uploader = "admin"
	default:
		m.Uploader = "token:" + c.p.tokenID
	}
	return m, nil
}

func (s *Server) handleUploadAttachment(c *call) error {
	docID, _, e := attachmentPath(c, false)
	if e != nil {
		return e
	}
	meta, e := uploadMeta(c)
	if e != nil {
		return e
	}
	if c.r.ContentLength > s.lim.MaxAttachmentBytes {
		e := s.attachmentTooLarge()
		s.metrics.rejected.WithLabelValues(e.code).Inc()
		return e
	}
	body := &uploadBody{r: http.MaxBytesReader(c.w, c.r.Body, s.lim.MaxAttachmentBytes)}
	var info attach.Info
	err := s.withInstance(c, func(in *index.Instance) error {
		var err error
		info, err = in.AddAttachment(c.ctx, docID, meta, body)
		switch {
		case err == nil:
			return nil
		case body.err != nil:
			return s.bodyError(body.err)
		case body.n > 0 && s.isClosed(err):
			// The instance was closed under the upload (more instances
			// in use than Config.MaxOpen): the body cannot be replayed,
			// so withInstance must not retry it.
			return &apiError{status: http.StatusServiceUnavailable, code: CodeOverloaded, retryAfter: 1, cause: err,
				message: "the instance was closed during the upload because more instances are in use than the server keeps open; nothing was stored. Retry the upload"}
		}
		return err
	})
	if err != nil {
		return attachmentError(err, msgNoDocument)
	}
	c.w.Header().Set("Location", "/v1/instances/"+url.PathEscape(c.name)+"/documents/"+url.PathEscape(docID)+"/attachments/"+info.ID)
	writeJSON(c.w, http.StatusCreated, info)
	return nil
}

// lockedOrUnavailable reports whether err means that the instance's key
// cannot be used now; its attachment metadata, outside BYOK, still can.
func lockedOrUnavailable(err error) bool {
	return errors.Is(err, keys.ErrKeyRevoked) || errors.Is(err, keys.ErrKeyUnavailable)
}

// catalogAttachments lists a document's attachments through the catalog,
// which reads the metadata with the instance's metadata key alone, without
// opening the instance (whose key may be revoked). The token's instance
// incarnation is checked before and after, as withInstance does.
func (s *Server) catalogAttachments(c *call, docID string) ([]attach.Info, error) {
	check := func() error {
		man, err := s.manifest(c.name)
		if err != nil {
			return err
		}
		if c.p.prefix != nil && !bytes.Equal(man.Prefix, c.p.prefix) {
			return errInstanceNotFound(c.name)
		}
		return nil
	}
	if err := check(); err != nil {
		return nil, err
	}
	list, err := s.cat.ListAttachments(c.ctx, c.name, docID)
	if cerr := check(); cerr != nil {
		return nil, cerr // deleted (or re-created) meanwhile
	}
	return list, err
}

func (s *Server) handleListAttachments(c *call) error {
	docID, _, e := attachmentPath(c, false)
	if e != nil {
		return e
	}
	var list []attach.Info
	err := s.withInstance(c, func(in *index.Instance) error {
		var err error
		list, err = in.ListAttachments(c.ctx, docID)
		return err
	})
	if lockedOrUnavailable(err) {
		list, err = s.catalogAttachments(c, docID)
	}
	if err != nil {
		return attachmentError(err, msgNoAttachment)
	}
	if list == nil {
		list = []attach.Info{}
	}
	writeJSON(c.w, http.StatusOK, map[string]any{"attachments": list})
	return nil
}

func (s *Server) handleAttachmentMeta(c *call) error {
	docID, aid, e := attachmentPath(c, true)
	if e != nil {
		return e
	}
	var info attach.Info
	err := s.withInstance(c, func(in *index.Instance) error {
		var err error
		info, err = in.Attachment(c.ctx, docID, aid)
		return err
	})
	if lockedOrUnavailable(err) {
		var list []attach.Info
		list, err = s.catalogAttachments(c, docID)
		if err == nil {
			err = newErr(http.StatusNotFound, CodeNotFound, msgNoAttachment)
			for _, a := range list {
				if strings.EqualFold(a.ID, aid) {
					info, err = a, nil
					break
				}
			}
		}
	}
	if err != nil {
		return attachmentError(err, msgNoAttachment)
	}
	writeJSON(c.w, http.StatusOK, info)
	return nil
}

func (s *Server) handleDeleteAttachment(c *call) error {
	docID, aid, e := attachmentPath(c, true)
	if e != nil {
		return e
	}
	err := s.withInstance(c, func(in *index.Instance) error {
		return in.DeleteAttachment(c.ctx, docID, aid)
	})
	if err != nil {
		return attachmentError(err, msgNoAttachment)
	}
	c.w.WriteHeader(http.StatusNoContent)
	return nil
}

// maxReopens bounds how often a download reopens an instance that was
// closed under it (as withInstance bounds its retries).
const maxReopens = 8

// attachStream reads an attachment for a download. When the instance is
// closed under it (more instances in use than Config.MaxOpen), it reopens
// the instance and the attachment and skips what it already returned: an
// attachment's contents never change under its id.
type attachStream struct {
	s            *Server
	c            *call
	docID, aid   string
	rc           io.ReadCloser
	info         attach.Info
	off          int64 // bytes returned so far
	reopens      int
	openedBefore bool
}

// open opens the attachment (again) and skips the first off bytes.
func (a *attachStream) open() error {
	return a.s.withInstance(a.c, func(in *index.Instance) error {
		rc, info, err := in.OpenAttachment(a.c.ctx, a.docID, a.aid)
		if err != nil {
			return err
		}
		if a.openedBefore && (info.ID != a.info.ID || info.Size != a.info.Size) {
			rc.Close()
			return errors.New("server: an attachment changed under its id while it was downloaded")
		}
		if a.off > 0 {
			if _, err := io.CopyN(io.Discard, rc, a.off); err != nil {
				rc.Close()
				return err
			}
		}
		a.rc, a.info, a.openedBefore = rc, info, true
		return nil
	})
}

func (a *attachStream) Read(p []byte) (int, error) {
	for {
		n, err := a.rc.Read(p)
		a.off += int64(n)
		if err == nil || err == io.EOF || !a.s.isClosed(err) {
			return n, err
		}
		if n > 0 {
			return n, nil // the next Read reopens
		}
		if a.reopens >= maxReopens {
			return 0, err
		}
		a.reopens++
		a.rc.Close()
		if err := a.open(); err != nil {
			return 0, err
		}
	}
}

func (a *attachStream) Close() error { return a.rc.Close() }

// handleDownloadAttachment streams an attachment's contents with the
// Content-Type and Content-Length of its metadata. The first chunk is read
// before the answer starts, so that a locked instance or a damaged first
// chunk gets a JSON error; a failure after that aborts the connection (see
// wrap), so the client sees a short transfer, never a short body taken for
// the whole.
func (s *Server) handleDownloadAttachment(c *call) error {
	docID, aid, e := attachmentPath(c, true)
	if e != nil {
		return e
	}
	a := &attachStream{s: s, c: c, docID: docID, aid: aid}
	if err := a.open(); err != nil {
		return attachmentError(err, msgNoAttachment)
	}
	defer a.Close()
	buf := make([]byte, attach.ChunkSize)
	n := 0
	if c.r.Method != http.MethodHead {
		var err error
		n, err = io.ReadFull(a, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			return attachmentError(err, msgNoAttachment)
		}
	}
	h := c.w.Header()
	ct := a.info.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(a.info.Size, 10))
	disp := "attachment"
	if a.info.Name != "" {
		if d := mime.FormatMediaType("attachment", map[string]string{"filename": a.info.Name}); d != "" {
			disp = d
		}
	}
	h.Set("Content-Disposition", disp)
	// The contents are the client's, of any type: never let a browser
	// render them as part of this origin.
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	h.Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	if c.r.Method == http.MethodHead {
		return nil
	}
	for {
		if n > 0 {
			if _, werr := c.w.Write(buf[:n]); werr != nil {
				return nil // the client went away; nothing to answer
			}
		}
		var err error
		n, err = io.ReadFull(a, buf)
		switch {
		case err == io.EOF:
			return nil
		case err == io.ErrUnexpectedEOF:
			err = nil // a last, partial buffer
		case err != nil:
			return attachmentError(err, msgNoAttachment)
		}
	}
}
