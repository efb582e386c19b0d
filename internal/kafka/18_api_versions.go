package kafka

import (
	"context"
	"sort"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions, key 18.
//
// Versions 0-4. v3 (KIP-511) added client software name and version; v4
// only lets clients know they may ask again (KIP-896 era). The answer lists
// exactly the keys and versions registered by the handler files. A request
// for an unsupported ApiVersions version is answered at v0 with
// UNSUPPORTED_VERSION and the supported range (see conn.parse).

const apiVersionsKey = 18

func init() { register(apiVersionsKey, 0, 4, handleApiVersions) }

func supportedKeys() []kmsg.ApiVersionsResponseApiKey {
	keys := make([]kmsg.ApiVersionsResponseApiKey, 0, len(handlers))
	for _, h := range handlers {
		keys = append(keys, kmsg.ApiVersionsResponseApiKey{ApiKey: h.key, MinVersion: h.minVersion, MaxVersion: h.maxVersion})
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].ApiKey < keys[j].ApiKey })
	return keys
}

// Features (v3 and later, KIP-584): transaction.version is supported from
// 0 to maxTransactionVersion and finalized at Config.TransactionVersion.
// Clients use transactions V2 (KIP-890 part 2) when it is finalized at 2:
// Produce v12 and later adds partitions to the transaction at the leader,
// TxnOffsetCommit v5 and later adds the group, and EndTxn v5 and later
// bumps the producer epoch (txn.Coordinator.EndTxnV2). The V2 behaviour
// follows the request versions, as in Kafka, so a client that still sends
// the older versions keeps the original protocol whatever is finalized.
// The level changes only with a restart. The finalized features' epoch is
// the level, so a raised level also raises the epoch: the Java client keeps
// the finalized features of the highest epoch it has seen.
const (
	transactionVersionFeature = "transaction.version"
	maxTransactionVersion     = 2
)

func handleApiVersions(_ context.Context, c *conn, req kmsg.Request) (kmsg.Response, error) {
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	resp.ApiKeys = supportedKeys()
	if resp.Version >= 3 {
		sf := kmsg.NewApiVersionsResponseSupportedFeature()
		sf.Name, sf.MinVersion, sf.MaxVersion = transactionVersionFeature, 0, maxTransactionVersion
		resp.SupportedFeatures = append(resp.SupportedFeatures, sf)
		ff := kmsg.NewApiVersionsResponseFinalizedFeature()
		ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = transactionVersionFeature, c.s.cfg.TransactionVersion, c.s.cfg.TransactionVersion
		resp.FinalizedFeatures = append(resp.FinalizedFeatures, ff)
		resp.FinalizedFeaturesEpoch = int64(c.s.cfg.TransactionVersion)
	}
	return resp, nil
}

// unsupportedApiVersions is the v0 answer to an ApiVersions request of a
// version we do not know.
func unsupportedApiVersions() kmsg.Response {
	resp := kmsg.NewPtrApiVersionsResponse()
	resp.Version = 0
	resp.ErrorCode = kerr.UnsupportedVersion.Code
	resp.ApiKeys = supportedKeys()
	return &v0Response{resp}
}

// v0Response pins a response to version 0 whatever the request version.
type v0Response struct{ *kmsg.ApiVersionsResponse }

func (r *v0Response) SetVersion(int16) { r.ApiVersionsResponse.Version = 0 }
