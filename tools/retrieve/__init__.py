"""The ``retrieve`` action: passages from an operator's own documents (see ``tool``)."""
