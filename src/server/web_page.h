// The chat page served at GET /: one self-contained HTML document (CSS and JavaScript inline,
// nothing fetched from elsewhere) that talks to this server's /v1/chat/completions with
// stream = true: type a message, attach an image, watch the answer arrive, keep the
// conversation in the page.
#pragma once

#include <string>

namespace unicorn::server {

// With api_key_required the page shows a field for the key and sends it as a Bearer token.
std::string web_page_html(bool api_key_required);

}  // namespace unicorn::server
