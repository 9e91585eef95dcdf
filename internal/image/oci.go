package image

import (
	"context"
	"errors"
)

func importOCI(ctx context.Context, source, rootfs string, o ImportOptions) (*Meta, error) {
	return nil, errors.New("OCI import not implemented yet")
}
