"""The gateway: one process serving several devices, and the outputs beyond the terminal.

- :mod:`c3t_edge.gateway.devices`: the devices of one ``stream`` (``--port`` repeated, or a TOML
  file), their names, and one pipeline per device;
- :mod:`c3t_edge.gateway.mqtt`: events and link state published to an MQTT broker (``--publish``).
- :mod:`c3t_edge.gateway.web`: the live web view (``--web``): signals, class probabilities, events,
  link state and latency per device, pushed to the browser.

Every output is a sink (:mod:`c3t_edge.runtime.sinks`) of one device, so each knows its device's
name. Nothing here imports torch.
"""
