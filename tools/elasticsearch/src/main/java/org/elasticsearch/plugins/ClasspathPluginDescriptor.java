package org.elasticsearch.plugins;

import org.elasticsearch.Build;

import java.util.List;

/**
 * The descriptor of a classpath plugin ({@link ClasspathPluginsService}). Elasticsearch 9 added a constructor
 * argument: tools/elasticsearch9 replaces this file.
 */
final class ClasspathPluginDescriptor {

    private ClasspathPluginDescriptor() {}

    static PluginDescriptor of(Class<? extends Plugin> pluginClass) {
        return new PluginDescriptor(
            pluginClass.getName(),
            "classpath plugin " + pluginClass.getName(),
            "NA",
            Build.current().version(),
            "17",
            pluginClass.getName(),
            null,
            List.of(),
            false,
            false,
            false,
            false
        );
    }
}
