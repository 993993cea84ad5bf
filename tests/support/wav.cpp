// WAV reading/writing and the speech corpora the audio tests use.
#include "wav.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "test_support.hpp"

namespace osvi::test {
namespace {

uint32_t le32(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
}
uint16_t le16(const unsigned char* p) {
  return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

}  // namespace

Wav read_wav(const std::string& path) {
  const std::string data = read_file(path);
  const auto* p = reinterpret_cast<const unsigned char*>(data.data());
  if (data.size() < 12 || std::memcmp(p, "RIFF", 4) != 0 || std::memcmp(p + 8, "WAVE", 4) != 0)
    throw std::runtime_error(path + ": not a RIFF/WAVE file");
  Wav w;
  int bits = 0;
  size_t off = 12;
  while (off + 8 <= data.size()) {
    const uint32_t len = le32(p + off + 4);
    if (std::memcmp(p + off, "fmt ", 4) == 0 && off + 8 + 16 <= data.size()) {
      if (le16(p + off + 8) != 1) throw std::runtime_error(path + ": not PCM");
      w.channels = le16(p + off + 10);
      w.rate = static_cast<int>(le32(p + off + 12));
      bits = le16(p + off + 22);
    } else if (std::memcmp(p + off, "data", 4) == 0) {
      if (bits != 16 || w.channels < 1) throw std::runtime_error(path + ": not 16-bit PCM");
      const size_t end = std::min(data.size(), off + 8 + len);
      const size_t frame = 2 * static_cast<size_t>(w.channels);
      for (size_t i = off + 8; i + frame <= end; i += frame)
        w.samples.push_back(static_cast<int16_t>(le16(p + i)));
      return w;
    }
    off += 8 + len + (len & 1);
  }
  throw std::runtime_error(path + ": no data chunk");
}

void write_wav(const std::string& path, int rate, int channels, const std::vector<int16_t>& interleaved) {
  std::string out;
  auto put32 = [&](uint32_t v) {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((v >> (8 * i)) & 0xff);
  };
  auto put16 = [&](uint16_t v) {
    out += static_cast<char>(v & 0xff);
    out += static_cast<char>(v >> 8);
  };
  const auto bytes = static_cast<uint32_t>(interleaved.size() * 2);
  out += "RIFF";
  put32(36 + bytes);
  out += "WAVEfmt ";
  put32(16);
  put16(1);
  put16(static_cast<uint16_t>(channels));
  put32(static_cast<uint32_t>(rate));
  put32(static_cast<uint32_t>(rate * channels * 2));
  put16(static_cast<uint16_t>(channels * 2));
  put16(16);
  out += "data";
  put32(bytes);
  for (int16_t s : interleaved) put16(static_cast<uint16_t>(s));
  write_file(path, out);
}

std::vector<int16_t> librivox_speech() {
  const std::filesystem::path dir = "/usr/share/pocketsphinx/test/data/librivox";
  if (!std::filesystem::exists(dir))
    throw std::runtime_error("install pocketsphinx-testdata for " + dir.string());
  std::vector<std::filesystem::path> files;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".wav") files.push_back(e.path());
  std::sort(files.begin(), files.end());
  std::vector<int16_t> all;
  for (const auto& f : files) {
    Wav w = read_wav(f.string());
    all.insert(all.end(), w.samples.begin(), w.samples.end());
  }
  return all;
}

std::vector<int16_t> espeak_speech(const std::string& text, const std::string& voice) {
  TempDir dir;
  const std::string txt = dir.file("in.txt"), raw = dir.file("out.wav"), wav = dir.file("16k.wav");
  write_file(txt, text);
  const std::string cmd = "espeak-ng -v '" + voice + "' -f '" + txt + "' -w '" + raw + "' && sox -q '" + raw +
                          "' -r 16000 -c 1 -b 16 '" + wav + "'";
  if (std::system(cmd.c_str()) != 0)
    throw std::runtime_error("espeak-ng/sox failed (install espeak-ng and sox)");
  return read_wav(wav).samples;
}

}  // namespace osvi::test
