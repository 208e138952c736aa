// tests/support/misp_answers.h: MISP answers built in tests, for what no recorded fixture shows.
#pragma once

#include <cassert>
#include <string>

namespace sgsync::testing {

// A bulk restSearch answer ({"response":[{"Event":...},...]}) of `events` minimal events (at most
// 16): uuid 326aa0b6-efbc-4b2a-9da5-ffa0b18015eX, X the event's index in hex, info "e<index>".
inline std::string RestSearchAnswerOf(int events) {
  assert(events >= 0 && events <= 16);
  std::string answer = R"({"response":[)";
  for (int i = 0; i < events; ++i) {
    answer += std::string(i ? "," : "") + R"({"Event":{"uuid":"326aa0b6-efbc-4b2a-9da5-ffa0b18015e)" +
              "0123456789abcdef"[i] + R"(","info":"e)" + std::to_string(i) + R"("}})";
  }
  return answer + "]}";
}

}  // namespace sgsync::testing
