"""A local autoscaler for the prefill and decode pools: the Kubernetes HPA's rule (`hpa`),
fed by the scheduler's metrics (`signals`), run on a timer (`loop`); `supernode autoscale`
wires it to a running `supernode up`."""
