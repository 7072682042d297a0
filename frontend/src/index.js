// Entry point of chatbot.js: registers <chatbot-sheet> and <chatbot-activity>.
import { ChatbotActivityElement } from "./activity-element.js";
import { ChatbotSheetElement } from "./element.js";

if (!customElements.get("chatbot-sheet")) customElements.define("chatbot-sheet", ChatbotSheetElement);
if (!customElements.get("chatbot-activity")) customElements.define("chatbot-activity", ChatbotActivityElement);

export { ChatbotActivityElement, ChatbotSheetElement };
