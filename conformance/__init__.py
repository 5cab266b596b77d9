"""Open Inference Protocol (KServe V2) conformance suite: rules, deviations, report."""
