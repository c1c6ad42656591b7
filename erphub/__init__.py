"""erphub: keeps a CRM and the ERP / finance systems behind it in agreement.

One import namespace. The repository's top-level folders install as its subpackages
(`config/` is `erphub.config`, `connectors/` is `erphub.connectors`, ...; see pyproject.toml's
`[tool.setuptools.package-dir]`), and the layers import in one direction only:

    erphub.cli                       the `erphub` command; the only importer of flows and sandbox
    erphub.flows                     Prefect flows, deployments, the Prefect server
    erphub.engine, runtime, store,   run a pipeline (plain Python, no Prefect), remember, receive
      webhooks, serve, conflicts
    erphub.connectors                one system each (may count metrics through monitoring)
    erphub.config, mappings,         validated config, the pure mapping language,
      monitoring                     metrics, logs, alerts
    erphub.core                      records, errors, the YAML locator: imports nothing of erphub

`make lint` (and a test) hold the arrows with import-linter contracts in pyproject.toml.
"""

__version__ = "0.1.0"
