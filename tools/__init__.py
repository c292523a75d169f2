"""The actions an agent may take: the tool interface and registry (the allow-list), the Python
sandbox and the web search providers. Knows nothing about agents or HTTP."""
