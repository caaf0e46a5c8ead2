"""The gRPC servicers: protobuf in, relay core, protobuf out."""
