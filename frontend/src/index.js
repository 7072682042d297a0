// Entry point of chatbot.js: registers <chatbot-sheet>.
import { ChatbotSheetElement } from "./element.js";

if (!customElements.get("chatbot-sheet")) customElements.define("chatbot-sheet", ChatbotSheetElement);

export { ChatbotSheetElement };
