"""Examples of host applications that plug into the chatbot."""
