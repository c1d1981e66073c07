#include <gtest/gtest.h>

#include "core/error.h"
#include "image/manifest.h"
#include "image/platform.h"
#include "image/stored.h"

#include <nlohmann/json.hpp>

using namespace wharf;
using namespace wharf::image;

namespace {
const std::string kD1 = "sha256:" + std::string(64, '1');
const std::string kD2 = "sha256:" + std::string(64, '2');

std::string oci_manifest(const std::string& extra = "") {
  return R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)"
         R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")" +
         kD1 + R"(","size":10},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":")" +
         kD2 + R"(","size":20}])" + extra + "}";
}

core::ErrorCode code_of(const std::string& body, const std::string& ct) {
  try {
    parse_manifest(body, ct);
  } catch (const core::Error& e) {
    return e.code();
  }
  return core::ErrorCode::Internal;  // "no error"
}
}  // namespace

TEST(Manifest, ParsesImageManifest) {
  auto p = parse_manifest(oci_manifest(), std::string(kOciManifest));
  EXPECT_EQ(p.media_type, kOciManifest);
  EXPECT_FALSE(p.is_index);
  ASSERT_EQ(p.blobs.size(), 2u);
  EXPECT_EQ(p.blobs[0].digest, kD1);
  EXPECT_EQ(p.artifact_type, "application/vnd.oci.image.config.v1+json");
}

TEST(Manifest, ArtifactTypeSubjectAndForeignLayers) {
  auto body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/x-sbom",)"
              R"("config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":")" + kD1 + R"(","size":2},)"
              R"("layers":[{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":")" + kD2 +
              R"(","size":5,"urls":["https://example.com/x"]}],"subject":{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
              kD2 + R"(","size":7},"annotations":{"a":"b"}})";
  auto p = parse_manifest(body, "");
  EXPECT_EQ(p.artifact_type, "application/x-sbom");
  ASSERT_TRUE(p.subject);
  EXPECT_EQ(p.subject->digest, kD2);
  EXPECT_TRUE(p.blobs[1].has_urls);
  EXPECT_EQ(p.annotations, R"({"a":"b"})");
}

TEST(Manifest, ParsesIndex) {
  auto body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":")" +
              kD1 + R"(","size":3,"platform":{"os":"linux","architecture":"amd64"}}]})";
  auto p = parse_manifest(body, "application/vnd.oci.image.index.v1+json; charset=utf-8");
  EXPECT_TRUE(p.is_index);
  ASSERT_EQ(p.children.size(), 1u);
}

TEST(Manifest, Rejections) {
  using C = core::ErrorCode;
  EXPECT_EQ(code_of(oci_manifest(), std::string(kDockerManifest)), C::ManifestInvalid);  // type mismatch
  EXPECT_EQ(code_of("{not json", ""), C::ManifestInvalid);
  EXPECT_EQ(code_of("[]", ""), C::ManifestInvalid);
  EXPECT_EQ(code_of(R"({"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]})", ""), C::ManifestInvalid);
  EXPECT_EQ(code_of("{}", "application/vnd.docker.distribution.manifest.v1+prettyjws"), C::ManifestInvalid);
  EXPECT_EQ(code_of(R"({"schemaVersion":2,"mediaType":"application/x-custom"})", ""), C::ManifestInvalid);
  EXPECT_EQ(code_of(R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]})", ""),
            C::ManifestInvalid);  // no config
  auto bad_digest = oci_manifest();
  bad_digest.replace(bad_digest.find(kD2), kD2.size(), "sha256:xyz");
  EXPECT_EQ(code_of(bad_digest, ""), C::ManifestInvalid);
}

TEST(Manifest, Schema1MessageSaysWhatToDo) {
  try {
    parse_manifest(R"({"schemaVersion":1})", "");
    FAIL();
  } catch (const core::Error& e) {
    EXPECT_NE(std::string(e.what()).find("schema2"), std::string::npos);
  }
}

TEST(Accept, Negotiation) {
  std::string_view t = kDockerManifest;
  EXPECT_TRUE(accept_allows({}, t));
  EXPECT_TRUE(accept_allows({"*/*"}, t));
  EXPECT_TRUE(accept_allows({std::string_view(kOciManifest), t}, t));  // separate headers
  std::string joined = std::string(kOciManifest) + ", " + std::string(t) + ";q=0.9";
  EXPECT_TRUE(accept_allows({joined}, t));
  EXPECT_FALSE(accept_allows({std::string_view(kOciManifest)}, t));
  EXPECT_FALSE(accept_allows({std::string_view(kOciIndex), std::string_view(kOciManifest)}, t));
}

#include "image/platform.h"

TEST(Platform, NormalizesAndSkipsAttestations) {
  auto p = parse_platform("linux/arm64");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->str(), "linux/arm64/v8");
  EXPECT_EQ(parse_platform("linux/amd64")->str(), "linux/amd64");
  EXPECT_EQ(parse_platform("linux/arm")->str(), "linux/arm/v7");
  EXPECT_FALSE(parse_platform("linux"));
  EXPECT_FALSE(parse_platform("Linux/AMD64"));
  const std::string idx = R"({"schemaVersion":2,"manifests":[
    {"digest":"sha256:a","platform":{"os":"linux","architecture":"amd64"}},
    {"digest":"sha256:b","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
    {"digest":"sha256:c","platform":{"os":"unknown","architecture":"unknown"}}]})";
  auto arm = choose_platform(idx, *parse_platform("linux/arm64"));
  EXPECT_EQ(arm.digest.value_or(""), "sha256:b");
  EXPECT_EQ(arm.available, (std::vector<std::string>{"linux/amd64", "linux/arm64/v8"}));
  EXPECT_FALSE(choose_platform(idx, *parse_platform("linux/s390x")).digest);
  EXPECT_FALSE(choose_platform(idx, Platform{"unknown", "unknown", ""}).digest);
}

// Manifests stored before platform values were checked at push must not make
// readers throw: a platform with a non-string value is no platform.
TEST(Platform, NonStringValuesAreNoPlatform) {
  auto d = nlohmann::json::parse(R"({"digest":"sha256:x","platform":{"os":7,"architecture":"amd64"}})");
  EXPECT_FALSE(wharf::image::descriptor_platform(d).has_value());
  d = nlohmann::json::parse(R"({"platform":{"os":"linux","architecture":"arm64","variant":"v8"}})");
  ASSERT_TRUE(wharf::image::descriptor_platform(d).has_value());
  EXPECT_EQ(wharf::image::descriptor_platform(d)->str(), "linux/arm64/v8");
  std::string idx = R"({"manifests":[{"digest":"sha256:a","platform":{"os":7,"architecture":"amd64"}},
                                     {"digest":"sha256:b","platform":{"os":"linux","architecture":"amd64"}}]})";
  auto c = wharf::image::choose_platform(idx, {"linux", "amd64", ""});
  ASSERT_TRUE(c.digest.has_value());
  EXPECT_EQ(*c.digest, "sha256:b");
}

// Reading stored manifests (image/stored.h): what the squash service and the
// management API see of them.
TEST(StoredManifest, ImageManifestPartsInOrder) {
  std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
    "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:)" + std::string(64, 'c') +
                     R"(","size":7},
    "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:)" + std::string(64, '1') +
                     R"(","size":100},
              {"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:)" + std::string(64, '2') +
                     R"(","size":200,"urls":["https://example.com/x"]}],
    "annotations":{"a":"b"}})";
  auto img = wharf::image::stored_image(body);
  ASSERT_TRUE(img);
  EXPECT_EQ(img->config.digest, "sha256:" + std::string(64, 'c'));
  ASSERT_EQ(img->layers.size(), 2u);
  EXPECT_EQ(img->layers[0].digest, "sha256:" + std::string(64, '1'));
  EXPECT_FALSE(img->layers[0].has_urls);
  EXPECT_TRUE(img->layers[1].has_urls);
  EXPECT_EQ(img->layers[1].size, 200);
  EXPECT_FALSE(wharf::image::stored_is_index(body));
  auto s = wharf::image::summarize(body);
  EXPECT_EQ(s.size.value(), 307u);
  EXPECT_TRUE(s.platforms.empty());
  EXPECT_EQ(s.annotations, nlohmann::json({{"a", "b"}}));
  EXPECT_TRUE(wharf::image::tar_layer_media_type(img->layers[0].media_type));
  EXPECT_TRUE(wharf::image::tar_layer_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip"));
  EXPECT_FALSE(wharf::image::tar_layer_media_type("application/vnd.cncf.helm.chart.content.v1"));
  EXPECT_TRUE(wharf::image::image_config_media_type(img->config.media_type));
  EXPECT_FALSE(wharf::image::image_config_media_type("application/vnd.cncf.helm.config.v1+json"));
}

TEST(StoredManifest, IndexPlatformsSkipAttestationsAndOddValues) {
  std::string body = R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
    {"digest":"sha256:)" + std::string(64, 'a') + R"(","platform":{"os":"linux","architecture":"amd64"}},
    {"digest":"sha256:)" + std::string(64, 'b') + R"(","platform":{"os":"linux","architecture":"arm64","variant":"v8"}},
    {"digest":"sha256:)" + std::string(64, 'd') + R"(","platform":{"os":"unknown","architecture":"unknown"}},
    {"digest":"sha256:)" + std::string(64, 'e') + R"(","platform":{"os":7,"architecture":"amd64"}}]})";
  EXPECT_TRUE(wharf::image::stored_is_index(body));
  EXPECT_FALSE(wharf::image::stored_image(body));
  auto s = wharf::image::summarize(body);
  EXPECT_EQ(s.platforms, (std::vector<std::string>{"linux/amd64", "linux/arm64/v8"}));
  EXPECT_FALSE(s.size);
}

TEST(StoredManifest, WhatIsNotJsonIsNothingNotAnException) {
  EXPECT_FALSE(wharf::image::stored_image("not json"));
  EXPECT_FALSE(wharf::image::stored_is_index("[1,2]"));
  auto s = wharf::image::summarize("{oops");
  EXPECT_FALSE(s.size);
  EXPECT_TRUE(s.platforms.empty());
  EXPECT_EQ(wharf::image::config_labels("nope"), nlohmann::json::object());
  EXPECT_EQ(wharf::image::config_labels(R"({"config":{"Labels":{"k":"v"}}})"), nlohmann::json({{"k", "v"}}));
  EXPECT_EQ(wharf::image::config_labels(R"({"config":{"Labels":null}})"), nlohmann::json::object());
  EXPECT_TRUE(wharf::image::config_is_object("{}"));
  EXPECT_FALSE(wharf::image::config_is_object("[]"));
}
