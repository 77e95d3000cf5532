"""MQTT 3.1.1 and 5.0 on the built-in broker (docs/mqtt.md): ``codec`` turns bytes into
packets and back without I/O, ``listener`` serves MQTT clients in the broker's event loop."""
