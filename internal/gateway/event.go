package gateway

import (
	"strconv"

	"github.com/levyhq/levy/internal/gateway/provider"
	"github.com/levyhq/levy/internal/money"
	"github.com/levyhq/levy/internal/usage"
)

// Event properties the gateway sets.
const (
	PropModel         = "model"         // the catalog alias of the model served (else asked for)
	PropProviderModel = "providerModel" // the model as the provider reported it, when it did
	PropProvider      = "provider"      // "openai" or "anthropic"
	PropAPI           = "api"           // provider.API.String(): openai.chat, openai.responses, anthropic.messages
	PropStream        = "stream"        // "true" or "false", as the client asked
	PropMetering      = "metering"      // "reported", "partial" or "estimated"
	PropUsageFlags    = "usageFlags"    // provider.Flags.String(), when not empty
	PropTaskID        = "taskId"        // the Levy-Task-Id header, when sent
	PropFailOpen      = "failOpen"      // "true" when the call was allowed fail-open
	PropResponseID    = "responseId"    // the provider-derived id, when another call had it already
)

// gatewayIDPrefix starts the ID of an event named after its request rather than the
// provider's response.
const gatewayIDPrefix = "gateway:"

// event builds the usage event of a call. kind is usageReported, usagePartial (the counts the
// provider reported before the stream was cut) or usageEstimated (none reported: the input
// estimate as input_tokens and no output).
func (g *Gateway) event(c *call, u provider.Usage, kind string) usage.Event {
	prov := c.providerName()
	id := gatewayIDPrefix + c.reqID
	if u.ResponseID != "" && validText(u.ResponseID, usage.MaxStringLen-len(prov)-1) {
		id = prov + ":" + u.ResponseID
	}
	props := make([]usage.Property, 0, 9)
	model := c.req.Model
	if u.Model != "" && validText(u.Model, usage.MaxPropertyValue) {
		model = u.Model
		props = append(props, usage.Property{Key: PropProviderModel, Value: u.Model})
	}
	if alias := g.cfg.ModelAlias(model); validText(alias, usage.MaxPropertyValue) {
		model = alias
	}
	props = append(props,
		usage.Property{Key: PropModel, Value: model},
		usage.Property{Key: PropProvider, Value: prov},
		usage.Property{Key: PropAPI, Value: c.api.String()},
		usage.Property{Key: PropStream, Value: strconv.FormatBool(c.req.Stream)},
		usage.Property{Key: PropMetering, Value: kind},
	)
	if f := u.Flags.String(); f != "" && kind != usageEstimated {
		props = append(props, usage.Property{Key: PropUsageFlags, Value: f})
	}
	if c.taskID != "" {
		props = append(props, usage.Property{Key: PropTaskID, Value: c.taskID})
	}
	if c.dec.FailOpen {
		props = append(props, usage.Property{Key: PropFailOpen, Value: "true"})
	}
	var ms []usage.Measurement
	if kind == usageEstimated {
		ms = []usage.Measurement{
			{MetricKey: provider.MetricInputTokens, Value: money.QtyInt(c.req.EstimatedInputTokens)},
			{MetricKey: provider.MetricOutputTokens, Value: money.QtyInt(0)},
		}
	} else {
		ms = u.Measurements()
	}
	return usage.Event{
		ID:             id,
		EventType:      g.cfg.EventType,
		CustomerID:     c.customer,
		CorrelationID:  c.reqID,
		Timestamp:      c.start,
		TimestampGiven: true,
		Properties:     props,
		Measurements:   ms,
	}
}
