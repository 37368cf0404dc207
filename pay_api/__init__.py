"""The WeChat Pay sub-app: payment and refund notifications (``POST /pay/notify``)."""
