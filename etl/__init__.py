"""chatsell: a batch ETL that keeps a CRM store in step with Zendesk Chat exports."""

__version__ = "0.1.0"
