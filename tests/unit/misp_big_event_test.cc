// A 150k-attribute event (about 50 MB) parses from network-sized chunks within 3x its size.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "misp-sim/generator.h"
#include "misp/event.h"

namespace sgsync::misp {
namespace {

long StatusKb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stol(line.substr(std::string(field).size()));
  }
  return -1;
}

TEST(MispBigEventTest, ParsesFromChunksWithPeakMemoryWithinThreeTimesTheDocument) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer's shadow memory makes RSS meaningless; the dev preset measures this";
#endif
  sgsync::sim::GeneratedEventShape shape;
  shape.attributes = 150000;
  std::string doc = sgsync::sim::GenerateEventJson(shape);
  ASSERT_GT(doc.size(), 40u << 20);

  // Reset the peak-RSS counter so VmHWM measures only the parse.
  { std::ofstream("/proc/self/clear_refs") << "5"; }
  long before_kb = StatusKb("VmRSS:");
  JsonReader reader;
  for (std::size_t i = 0; i < doc.size(); i += 65536) {
    ASSERT_TRUE(reader.Write(std::string_view(doc).substr(i, 65536)).ok());
  }
  auto value = reader.Finish();
  ASSERT_TRUE(value.ok());
  auto event = EventDocument::FromJson(std::move(*value));
  ASSERT_TRUE(event.ok()) << event.error().ToString();
  long peak_kb = StatusKb("VmHWM:");
  ASSERT_GT(before_kb, 0);
  double ratio = static_cast<double>(peak_kb - before_kb) * 1024.0 / static_cast<double>(doc.size());
  RecordProperty("peak_over_document", std::to_string(ratio));
  std::printf("document %.1f MB, parse peak %.1f MB, ratio %.2f\n", doc.size() / 1e6,
              (peak_kb - before_kb) / 1024.0, ratio);
  EXPECT_LE(ratio, 3.0);
  EXPECT_EQ(event->event().attribute_views().size(), 150000u);
}

}  // namespace
}  // namespace sgsync::misp
