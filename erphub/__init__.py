"""erphub: keeps a CRM and the ERP / finance systems behind it in agreement.

The engine package. Leaf modules (`records`, `errors`) import nothing from the rest of the
project so that connectors, mappings and monitoring can use the shared vocabulary without
creating import cycles.
"""

__version__ = "0.1.0"
