package sqlstore

import (
	"context"
	"errors"

	"github.com/streamhouse/streamhouse/internal/metadata"
)

var errTxnUnimplemented = errors.New("transactions: not implemented yet")

// GetTxn implements metadata.Store.
func (s *Store) GetTxn(ctx context.Context, id string) (metadata.Txn, bool, error) {
	return metadata.Txn{}, false, errTxnUnimplemented
}

// ListTxns implements metadata.Store.
func (s *Store) ListTxns(ctx context.Context, f metadata.TxnFilter) ([]metadata.Txn, error) {
	return nil, errTxnUnimplemented
}

// PutTxn implements metadata.Store.
func (s *Store) PutTxn(ctx context.Context, fence metadata.GroupFence, t metadata.Txn) error {
	return errTxnUnimplemented
}

// DeleteTxn implements metadata.Store.
func (s *Store) DeleteTxn(ctx context.Context, fence metadata.GroupFence, id string, producerID int64, epoch int16) error {
	return errTxnUnimplemented
}

// AddTxnOffsets implements metadata.Store.
func (s *Store) AddTxnOffsets(ctx context.Context, fence metadata.GroupFence, id string, producerID int64, epoch int16, offsets []metadata.GroupOffset) error {
	return errTxnUnimplemented
}

// PendingTxnOffsets implements metadata.Store.
func (s *Store) PendingTxnOffsets(ctx context.Context, group string) ([]metadata.GroupOffset, error) {
	return nil, errTxnUnimplemented
}

// ListAbortedTxns implements metadata.Store.
func (s *Store) ListAbortedTxns(ctx context.Context, tp metadata.TopicPartition, from, to int64) ([]metadata.AbortedTxn, error) {
	return nil, errTxnUnimplemented
}
