// tests/support/sim_instance.h: one misp-sim served over plain HTTP on a free loopback port, with
// a way to act on it as its site admin without the network (a test's set-up is not what it tests).
// For the in-process tests of the engine and of the daemon's operations.
#pragma once

#include <boost/json.hpp>
#include <memory>
#include <string>
#include <utility>

#include "misp-sim/sim.h"

namespace sgsync::testing {

namespace json = boost::json;

class Instance {
 public:
  Instance(const std::string& org, const std::string& org_uuid) : admin_key_(sim::RandomKey()) {
    sim_ =
        std::move(*sim::MispSim::Create(sim::SimConfig{":memory:", "", org, org_uuid, admin_key_, "", ""}));
    sim::MispSim* raw = sim_.get();
    server_ = std::move(
        *sim::HttpServer::Start("127.0.0.1", 0, [raw](const sim::HttpRequest& r) { return raw->Handle(r); }));
    sim_->set_base_url(url());
  }
  ~Instance() { server_->Stop(); }

  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_->port()); }
  sim::MispSim& sim() { return *sim_; }
  const std::string& admin_key() const { return admin_key_; }

  // A REST call as the site admin; returns the answer's status and JSON body (null when none).
  std::pair<int, json::value> Call(const std::string& method, const std::string& target,
                                   const json::value& body = nullptr) {
    sim::HttpRequest r;
    r.method = method;
    r.target = target;
    r.headers = {{"authorization", admin_key_},
                 {"accept", "application/json"},
                 {"content-type", "application/json"},
                 {"user-agent", "MISP 2.5.1 - #engine-test"}};
    if (!body.is_null()) r.body = json::serialize(body);
    sim::HttpResponse a = sim_->Handle(r);
    boost::system::error_code ec;
    json::value v = a.body.empty() ? json::value() : json::parse(a.body, ec);
    return {a.status, ec ? json::value() : v};
  }

  // The event as its owner sees it, or null when the instance does not hold it.
  json::value View(const std::string& uuid) {
    auto [status, body] = Call("GET", "/events/view/" + uuid);
    return status == 200 ? body.at("Event") : json::value();
  }
  std::string Info(const std::string& uuid) { return std::string(View(uuid).at("info").as_string()); }

  // Changes the event's info, moves its timestamp `later` seconds on and publishes it, as a user of
  // this instance would.
  void EditInfo(const std::string& uuid, const std::string& info, int later) {
    json::object ev = View(uuid).as_object();
    ev["info"] = info;
    ev["timestamp"] = std::to_string(std::stoll(std::string(ev.at("timestamp").as_string())) + later);
    ASSERT_EQ(Call("POST", "/events/edit/" + uuid, json::object{{"Event", ev}}).first, 200);
    ASSERT_EQ(Call("POST", "/events/publish/" + std::string(ev.at("id").as_string())).first, 200);
  }

  void Delete(const std::string& uuid) {
    std::string id(View(uuid).at("id").as_string());
    ASSERT_EQ(Call("POST", "/events/delete/" + id).first, 200);
  }

  std::size_t Count(const std::string& prefix) {
    std::size_t n = 0;
    for (const auto& r : sim_->RequestLog()) n += r.target.rfind(prefix, 0) == 0;
    return n;
  }

 private:
  std::string admin_key_;
  std::unique_ptr<sim::MispSim> sim_;
  std::unique_ptr<sim::HttpServer> server_;
};

}  // namespace sgsync::testing
