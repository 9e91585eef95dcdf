package api

import (
	_ "embed"
	"net/http"
)

// openapi.json describes every route of the API (OpenAPI 3).
//
//go:embed openapi.json
var openAPI []byte

func serveDocs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPI)
}
